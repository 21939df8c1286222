"""The text the commands end with: the run's summary, a plan, the site's status."""
import sys


def summary_table(project, summary):
    """The gpulab.cluster.summary callback's own table (one piece of code for CLI and plain ansible-playbook)."""
    path = str(project / "collections")
    if path not in sys.path:
        sys.path.insert(0, path)
    from ansible_collections.gpulab.cluster.plugins.callback.summary import format_table
    return format_table(summary)


def run_end(out, progress, summary, rc, folder, tables=True):
    project = folder.parents[2]
    out.write("\n")
    rows = progress.layer_rows()
    if rows and tables:
        out.write("%-30s %6s %11s %10s %9s\n" % ("layer / play", "hosts", "changed on", "failed on", "seconds"))
        for name, hosts, changed, failed, seconds in rows:
            out.write("%-30s %6d %11d %10d %9.1f\n" % (name[:30], hosts, changed, failed, seconds))
        out.write("\n")
    if summary is not None:
        for line in summary_table(project, summary):
            out.write(line + "\n")
    if progress.failures:
        out.write("\nWhat failed:\n")
        for failure in progress.failures:
            out.write("- %s %s in %s, task %r: %s\n" % (
                failure["host"], failure["what"], failure["play"], failure["task"], failure["msg"]))
    out.write("%s (rc %s); ansible-runner artifacts: %s\n" % ("ok" if rc == 0 else "FAILED", rc, folder))
    out.flush()


def plan(out, summary, unseen=False):
    """What a check-mode run says the real run would change, per host and layer.

    Tasks check mode skipped (commands, steps on files the same run creates) are counted per host, and listed
    with `unseen`: on a converged host most of them change nothing, on a new one they are real changes.
    """
    out.write("\nPlan (check mode): what the real run would change\n")
    changing = {h: row for h, row in summary["hosts"].items() if row["changed"]}
    if not changing:
        out.write("nothing: every host is as the inventory describes it\n")
    for host in sorted(changing):
        row = changing[host]
        layers = ", ".join("%s %d" % item for item in sorted(row["changed_by_layer"].items()))
        out.write("%s: %d change(s) (%s)\n" % (host, row["changed"], layers))
        for task in row["changed_tasks"]:
            out.write("    will change: %s\n" % task)
    unchanged = sorted(h for h in summary["hosts"] if h not in changing and h != "localhost")
    if unchanged and changing:
        out.write("no change on: %s\n" % ", ".join(unchanged))
    unseen_rows = {h: row.get("may_change_tasks", []) for h, row in summary["hosts"].items()
                   if row.get("may_change_tasks")}
    if unseen_rows:
        out.write("check mode could not look at %s; %s\n" % (
            ", ".join("%s: %d task(s)" % (h, len(t)) for h, t in sorted(unseen_rows.items())),
            "these may change in the real run:" if unseen else "gpulab plan --unseen lists them"))
        for host, tasks in sorted(unseen_rows.items()) if unseen else ():
            for task in tasks:
                out.write("    %s: %s\n" % (host, task))
    out.flush()


def _gpus(node):
    gpus = node.get("gpus")
    if gpus is None:
        return "-"
    if not gpus.get("count"):
        return "none"
    driver = gpus.get("driver_version") or "no driver"
    return "%d x %s (%s)" % (gpus["count"], ", ".join(gpus.get("models") or ["?"]), driver)


def status(out, data, inventory):
    """Hosts, then the cluster's parts, as status.yml read them."""
    nodes = data.get("nodes", {})
    cluster = data.get("cluster", {})
    api_nodes = {n["name"]: n for n in cluster.get("nodes", [])}
    header = "%-8s %-14s %-10s %-12s %-16s %s" % ("host", "group", "reachable", "member of", "Kubernetes", "GPUs")
    out.write(header + "\n" + "-" * len(header) + "\n")
    for host in [h for h in inventory.hosts if h in nodes]:  # the hosts status.yml looked at (--limit)
        node = nodes[host]
        groups = [g for g in ("loadbalancer", "control_plane", "workers") if host in inventory.groups.get(g, [])]
        reachable = node.get("reachable", False)
        api = api_nodes.get(host)
        if api:
            kube = ("Ready" if api["ready"] else "NotReady") + (" day-use" if api["day_use"] else "")
        elif node.get("kubelet_conf"):
            kube = "joined (no API)"
        else:
            kube = "-"
        out.write("%-8s %-14s %-10s %-12s %-16s %s\n" % (
            host, ",".join(groups) or "-", "yes" if reachable else "NO",
            (node.get("member") or "-") if reachable else "?", kube, _gpus(node) if reachable else "?"))
    out.write("\n")
    if not cluster.get("exists"):
        out.write("Kubernetes: no cluster (no %s on %s)\n" % (
            cluster.get("kubeconfig", "admin.conf"), cluster.get("host", "the first control plane")))
        out.flush()
        return
    ready = sum(1 for n in api_nodes.values() if n["ready"])
    out.write("Kubernetes: %s, %d/%d nodes Ready\n" % (cluster.get("version", "?"), ready, len(api_nodes)))
    out.write("Storage:    %s\n" % (cluster.get("ceph_health") or "no CephCluster"))
    kubeflow = cluster.get("kubeflow")
    out.write("Kubeflow:   %s\n" % ("%d/%d Deployments available" % (kubeflow["available"], kubeflow["total"])
                                    if kubeflow and kubeflow["total"] else "not installed"))
    schedule = cluster.get("schedule")
    if schedule and schedule["cronjobs"]:
        day_use = sorted(name for name, n in api_nodes.items() if n["day_use"])
        out.write("Schedule:   %d CronJobs; %s\n" % (
            schedule["cronjobs"], ("day use now: " + ", ".join(day_use) + " tainted") if day_use
            else "after hours: no worker tainted"))
    else:
        out.write("Schedule:   none\n")
    out.flush()
