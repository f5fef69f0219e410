#!/bin/sh
# Runs in a privileged, hostNetwork pod pinned to one Kubernetes node (see core/hosts.py).
# SYSCTL_MODE=check reports; SYSCTL_MODE=apply also sets the values and persists them
# in /host/etc/sysctl.d/90-antdb.conf so they survive a reboot.
# Output contract, one line per key:  <key> current=<value> want=<value> result=<ok|set|drift|error>
set -u
mode="${SYSCTL_MODE:-check}"
persist=/host/etc/sysctl.d/90-antdb.conf
status=0
for pair in ${SYSCTL_WANT}; do
  key="${pair%%=*}"; want="${pair#*=}"
  path="/proc/sys/$(echo "$key" | tr . /)"
  if [ -r "$path" ]; then current="$(cat "$path")"; else current="missing"; fi
  if [ "$current" = "$want" ]; then
    echo "$key current=$current want=$want result=ok"
  elif [ "$mode" = "apply" ] && [ "$current" != "missing" ] && echo "$want" > "$path" 2>/dev/null; then
    mkdir -p "$(dirname "$persist")" && grep -v "^$key *=" "$persist" 2>/dev/null > "$persist.tmp"; \
      echo "$key = $want" >> "$persist.tmp" && mv "$persist.tmp" "$persist"
    echo "$key current=$current want=$want result=set"
  elif [ "$mode" = "apply" ]; then
    echo "$key current=$current want=$want result=error"; status=1
  else
    echo "$key current=$current want=$want result=drift"
  fi
done
exit $status
