"""Service ClusterIP allocation from a loopback network.

AntDB nodes address each other by Service ClusterIP, and the simulator makes each node's
database listen on its Service's address, so addresses must be unique while held. A deleted and
re-created Service must normally get a *new* address (as on a real cluster, where the allocator
is random): released addresses go to the back of the queue and are reused only once every
never-used address has been handed out. That is what exposes stale-IP bugs in the product.
"""

from __future__ import annotations

import ipaddress
from collections import deque

from .errors import InvalidFields


class ClusterIPAllocator:
    """Not thread-safe on its own: the store calls it under its lock."""

    def __init__(self, network: str) -> None:
        self.network = ipaddress.ip_network(network)
        self._fresh: deque[str] = deque(str(h) for h in self.network.hosts())
        self._released: deque[str] = deque()
        self._held: set[str] = set()

    def peek(self) -> str | None:
        """The address the next `allocate()` would return (for dry-run responses)."""
        for queue in (self._fresh, self._released):
            for ip in queue:
                if ip not in self._held:
                    return ip
        return None

    def allocate(self) -> str | None:
        """Hand out the next free address; None when the range is full."""
        for queue in (self._fresh, self._released):
            while queue:
                ip = queue.popleft()
                if ip not in self._held:
                    self._held.add(ip)
                    return ip
        return None

    def check_requested(self, ip: str, errors: InvalidFields, fld: str = "spec.clusterIPs") -> None:
        """Validate a client-chosen address like the real allocator (range, not in use)."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            errors.invalid(fld, [ip], "must be a valid IP address, (e.g. 127.0.10.1)")
            return
        if addr not in self.network or addr in (self.network.network_address,
                                                self.network.broadcast_address):
            errors.invalid(fld, [ip], f"failed to allocate IP {ip}: the provided IP ({ip}) is not "
                           f"in the valid range. The range of valid IPs is {self.network}")
        elif ip in self._held:
            errors.invalid(fld, [ip], f"failed to allocate IP {ip}: provided IP is already allocated")

    def take(self, ip: str) -> None:
        """Reserve a client-chosen address (already checked)."""
        self._held.add(ip)
        for queue in (self._fresh, self._released):
            if ip in queue:
                queue.remove(ip)

    def release(self, ip: str | None) -> None:
        if ip and ip in self._held:
            self._held.discard(ip)
            self._released.append(ip)

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._held)
