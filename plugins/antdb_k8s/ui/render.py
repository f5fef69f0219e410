"""HTML and SVG for the AntDB page, rendered on the server from `ClusterView` data.

No JavaScript and no external assets: the page works inside Airflow's iframe and behind
any proxy. Every value that came from a cluster is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Iterable, Sequence
from urllib.parse import quote

from antdb_k8s.core.cluster_view import Cell, ClusterView, Health, NodeRow
from antdb_k8s.ui.runs import LastVerification, RunInfo

COLOURS = {Health.OK: "#2e7d32", Health.DRIFT: "#c62828", Health.DOWN: "#616161", Health.UNKNOWN: "#f9a825"}
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:16px;color:#1f2328;background:#fff}
h1{font-size:20px;margin:0 0 12px} h2{font-size:16px;margin:22px 0 8px}
table{border-collapse:collapse;font-size:13px} th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left}
th{background:#f6f8fa} .mono{font-family:ui-monospace,Menlo,monospace}
.ok{background:#dafbe1;color:#116329} .bad{background:#ffd7d5;color:#82071e;font-weight:600}
.down{background:#eaeef2;color:#57606a} .unknown{background:#fff8c5;color:#7d4e00}
.state-success{color:#116329} .state-failed{color:#82071e} .problem{color:#82071e}
a{color:#0969da} .muted{color:#57606a}
"""
CELL_CLASS = {Cell.OK: "ok", Cell.UNKNOWN: "unknown"}  # every other state is drift: red
HEALTH_CLASS = {Health.OK: "ok", Health.DRIFT: "bad", Health.DOWN: "down", Health.UNKNOWN: "unknown"}


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>")


def _run_cell(run: RunInfo | None, airflow_root: str, extra: str = "") -> str:
    if run is None:
        return "<td class='muted'>never</td>"
    when = run.when.strftime("%Y-%m-%d %H:%M UTC") if run.when else "-"
    return (f"<td><a target='_top' href='{escape(run.link(airflow_root))}' class='state-{escape(run.state)}'>"
            f"{escape(run.state)}</a> <span class='muted'>{escape(when)}</span>{extra}</td>")


def _verdict(last: LastVerification | None) -> str:
    if last is None or last.report is None:
        return ""
    report = last.report
    if report.clean:
        return " <span class='ok'>clean</span>"
    return f" <span class='bad'>{len(report.drift)} finding(s)</span>"


def clusters_page(views: Sequence[ClusterView], deploys: dict, verifications: dict, base: str, airflow_root: str,
                  problem: str | None) -> str:
    """`base` is where this app is mounted (/antdb), `airflow_root` where Airflow's UI is (run links)."""
    rows = []
    for view in views:
        ns = view.namespace
        counts_class = "ok" if view.expected and view.ready == view.expected else "bad"
        counts = f"<td class='{counts_class}' data-test='counts'>{view.ready}/{view.expected}</td>"
        notes = "; ".join(view.problems)
        rows.append(
            f"<tr data-namespace='{escape(ns)}'><td><a href='{escape(base)}/clusters/{quote(ns)}'>{escape(ns)}</a></td>{counts}"
            f"{_run_cell(deploys.get(ns), airflow_root)}"
            f"{_run_cell(getattr(verifications.get(ns), 'run', None), airflow_root, _verdict(verifications.get(ns)))}"
            f"<td class='problem'>{escape(notes)}</td></tr>")
    body = "<h1>AntDB clusters</h1>"
    if problem:
        body += f"<p class='problem'>{escape(problem)}</p>"
    if not views and not problem:
        body += "<p class='muted'>No namespace carries this package's labels yet: run deploy_antdb.</p>"
    body += ("<table id='clusters'><tr><th>Namespace</th><th>Ready / expected</th><th>Last deploy_antdb</th>"
             "<th>Last verify_antdb_topology</th><th>Problems</th></tr>" + "".join(rows) + "</table>"
             f"<p class='muted'>JSON: <a href='{escape(base)}/api/clusters'>api/clusters</a></p>")
    return page("AntDB clusters", body)


def _yes_no(value: bool | None, good: str = "yes", bad: str = "no") -> str:
    if value is None:
        return "<td class='unknown'>-</td>"
    return f"<td class='ok'>{good}</td>" if value else f"<td class='bad'>{bad}</td>"


def _node_line(node: NodeRow) -> str:
    version = escape(node.version) if node.version else escape(node.error or "-")
    version_class = "problem" if node.error else ""
    return (f"<tr data-node='{escape(node.name)}'><td class='{HEALTH_CLASS[node.health]}'>{escape(node.name)}</td>"
            f"<td>{escape(node.role)}</td><td class='mono'>{escape(node.pod.name or '-')}</td>"
            f"<td class='mono'>{escape(node.address or '-')}</td>{_yes_no(node.pod.ready if node.pod.name else False)}"
            f"<td>{node.pod.restarts}</td><td class='mono'>{escape(node.pod.image or '-')}</td>"
            f"<td class='{version_class}'>{version}</td></tr>")


def node_table(view: ClusterView) -> str:
    head = ("<table id='nodes'><tr><th>Node</th><th>Role</th><th>Pod</th><th>Service ClusterIP:port</th>"
            "<th>Ready</th><th>Restarts</th><th>Image</th><th>AntDB version</th></tr>")
    return head + "".join(_node_line(n) for n in view.nodes) + "</table>"


def matrix_table(view: ClusterView) -> str:
    if not view.matrix:
        return "<p class='unknown'>Not checked: the topology is incomplete (see problems above).</p>"
    head = "<tr><th>pgxc_node on \u2193 / node \u2192</th>" + "".join(f"<th>{escape(c)}</th>" for c in view.columns)
    lines = []
    for row in view.matrix:
        cells = []
        for column in view.columns:
            cell = row.cells.get(column)
            state = cell.state if cell else Cell.OK
            klass = CELL_CLASS.get(state, "bad") if cell else "muted"
            text = state.value if cell else "-"
            title = escape(cell.detail if cell else "")
            cells.append(f"<td class='{klass}' data-cell='{escape(row.holder)}/{escape(column)}' "
                         f"title='{title}'>{escape(text)}</td>")
        lines.append(f"<tr><th>{escape(row.holder)}</th>{''.join(cells)}</tr>")
    return f"<table id='matrix'>{head}</tr>{''.join(lines)}</table>"


def agtm_table(view: ClusterView) -> str:
    lines = []
    for node in view.nodes:
        value = node.agtm or ("not readable: node unreachable" if node.reachable is False else "-")
        lines.append(f"<tr data-agtm='{escape(node.name)}'><td>{escape(node.name)}</td>"
                     f"<td class='mono'>{escape(value)}</td>{_yes_no(node.agtm_ok, 'gc', 'not gc')}</tr>")
    head = (f"<table id='agtm'><tr><th>Node</th><th>agtm_host:agtm_port</th>"
            f"<th>gc's Service {escape(view.gc_address or '?')}</th></tr>")
    return head + "".join(lines) + "</table>"


def findings_table(last: LastVerification | None, airflow_root: str) -> str:
    if last is None:
        return "<p class='muted'>No verify_antdb_topology run has covered this namespace yet.</p>"
    run = last.run
    when = run.when.strftime("%Y-%m-%d %H:%M UTC") if run.when else "-"
    head = (f"<p>Run <a target='_top' href='{escape(run.link(airflow_root))}'>{escape(run.run_id)}</a>: "
            f"<span class='state-{escape(run.state)}'>{escape(run.state)}</span> {escape(when)}{_verdict(last)}</p>")
    if last.report is None:
        return head + "<p class='muted'>That run ended before it reported on this namespace.</p>"
    problems = [f for f in last.report.findings if not f.ok]
    passed = [f for f in last.report.findings if f.ok]
    table = _findings_rows(problems) if problems else "<p class='ok'>Every check passed.</p>"
    if passed:
        table += (f"<details><summary>{len(passed)} passed check(s)</summary>{_findings_rows(passed, 'passed')}"
                  f"</details>")
    return head + table


def _findings_rows(findings, table_id: str = "findings") -> str:
    lines = [f"<tr><td>{escape(f.node)}</td><td>{escape(f.check)}</td>"
             f"<td class='{'ok' if f.ok else 'bad'}'>{'ok' if f.ok else 'DRIFT'}</td><td>{escape(f.detail)}</td></tr>"
             for f in findings]
    return (f"<table id='{table_id}'><tr><th>Node</th><th>Check</th><th>Result</th><th>Detail</th></tr>"
            + "".join(lines) + "</table>")


def cluster_page(view: ClusterView, last: LastVerification | None, base: str, airflow_root: str) -> str:
    ns = escape(view.namespace)
    body = (f"<p><a href='{escape(base)}/'>\u2190 all clusters</a></p><h1>AntDB cluster {ns} "
            f"<span class='{HEALTH_CLASS[view.health]}' id='health'>{escape(view.health.value)}</span></h1>"
            f"<p>{view.ready}/{view.expected} nodes Ready. JSON: <a href='{escape(base)}/api/clusters/{quote(view.namespace)}'>"
            f"api/clusters/{ns}</a></p>")
    body += "".join(f"<p class='problem'>{escape(p)}</p>" for p in view.problems)
    body += f"<h2>Topology</h2>{topology_svg(view)}"
    body += f"<h2>Nodes</h2>{node_table(view)}"
    body += f"<h2>pgxc_node agreement (live, planned with the deploy planner)</h2>{matrix_table(view)}"
    body += f"<h2>agtm_host against gc</h2>{agtm_table(view)}"
    body += f"<h2>Last verification</h2>{findings_table(last, airflow_root)}"
    return page(f"AntDB {view.namespace}", body)


# --------------------------------------------------------------------------- SVG

def _tiers(nodes: Iterable[NodeRow]) -> list[list[NodeRow]]:
    order = ("gtm_coord", "coordinator", "datanode")
    return [[n for n in nodes if n.role == role] for role in order]


def topology_svg(view: ClusterView) -> str:
    """gc on top, coordinators below, datanodes at the bottom; each box coloured by its health."""
    tiers = _tiers(view.nodes)
    box_w, box_h, gap, tier_h = 120, 44, 20, 90
    width = max(1, max(len(t) for t in tiers)) * (box_w + gap) + gap
    height = len(tiers) * tier_h + 30
    centres: dict[str, tuple[float, float]] = {}
    for depth, tier in enumerate(tiers):
        offset = (width - len(tier) * (box_w + gap) + gap) / 2
        for i, node in enumerate(tier):
            centres[node.name] = (offset + i * (box_w + gap) + box_w / 2, 20 + depth * tier_h + box_h / 2)
    lines = []
    for upper, lower in ((tiers[0], tiers[1]), (tiers[1], tiers[2])):
        for a in upper:
            for b in lower:
                (x1, y1), (x2, y2) = centres[a.name], centres[b.name]
                lines.append(f"<line x1='{x1:.0f}' y1='{y1 + box_h / 2:.0f}' x2='{x2:.0f}' y2='{y2 - box_h / 2:.0f}' "
                             f"stroke='#d0d7de'/>")
    boxes = []
    for node in view.nodes:
        if node.name not in centres:
            continue
        x, y = centres[node.name]
        colour = COLOURS[node.health]
        boxes.append(
            f"<g data-node='{escape(node.name)}' data-health='{node.health.value}'>"
            f"<title>{escape(node.name)}: {escape(node.health.value)}</title>"
            f"<rect x='{x - box_w / 2:.0f}' y='{y - box_h / 2:.0f}' width='{box_w}' height='{box_h}' rx='6' "
            f"fill='{colour}'/><text x='{x:.0f}' y='{y - 3:.0f}' text-anchor='middle' fill='#fff' "
            f"font-size='14' font-weight='600'>{escape(node.name)}</text>"
            f"<text x='{x:.0f}' y='{y + 13:.0f}' text-anchor='middle' fill='#fff' font-size='11'>"
            f"{escape(node.address or 'no address')}</text></g>")
    legend = "".join(f"<tspan fill='{c}'>\u25a0 {h.value}  </tspan>" for h, c in COLOURS.items())
    return (f"<svg id='topology' xmlns='http://www.w3.org/2000/svg' width='{width:.0f}' height='{height}' "
            f"viewBox='0 0 {width:.0f} {height}' font-family='sans-serif'>{''.join(lines)}{''.join(boxes)}"
            f"<text x='{gap}' y='{height - 6}' font-size='11'>{legend}</text></svg>")
