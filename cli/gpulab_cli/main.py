"""gpulab: deploy, repair, add-node, status and plan for a gpulab.cluster site, on ansible-runner.

Every command runs one playbook of the checkout with its ansible.cfg and collections, shows progress per layer and
host while it runs and ends with a summary table (the gpulab.cluster.summary callback's). Bad input is refused
before anything runs, with the valid choices listed.
"""
import argparse
import datetime
import json
import os
import pathlib
import sys

from gpulab_cli import project as proj
from gpulab_cli import report
from gpulab_cli.progress import Progress


def run_playbook(ctx, playbook, limit=None, tags=None, extravars=None, check=False, layers_total=0, out=None,
                 tables=True):
    """Run playbooks/PLAYBOOK through ansible-runner; returns a Run (rc, summary dict or None, progress)."""
    import ansible_runner  # imported here: the argument errors above need no ansible

    out = out or sys.stdout
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    folder = ctx.project / "build" / "gpulab-runs" / ("%s-%s" % (stamp, playbook.replace(".yml", "")))
    folder.mkdir(parents=True)
    summary_file = folder / "summary.json"
    # Only what differs from the caller's environment: ansible-runner inherits that, and writes what it is given
    # into the run's artifacts (env/envvars), where secrets of the caller's environment do not belong.
    env = proj.ansible_overrides(ctx.project)
    env.update({"ANSIBLE_CALLBACKS_ENABLED": "gpulab.cluster.summary", "GPULAB_SUMMARY_FILE": str(summary_file),
                # The run's summaries go into its own folder, never into another tool's (an empty value would be
                # a path option's current directory).
                "GPULAB_SUMMARY_DIR": str(folder / "summaries")})
    progress = Progress(out, layers_total=layers_total)
    # Diffs (file contents) only for a plan: the artifacts of other runs keep no copies of configuration files.
    cmdline = ["--check", "--diff"] if check else []
    kwargs = dict(private_data_dir=str(folder), project_dir=str(ctx.project),
                  playbook=str(ctx.project / "playbooks" / playbook), envvars=env, extravars=extravars or {},
                  event_handler=progress, quiet=True)
    if cmdline:
        kwargs["cmdline"] = " ".join(cmdline)
    if ctx.inventory:
        kwargs["inventory"] = str(ctx.inventory)
    if limit:
        kwargs["limit"] = limit
    if tags:
        kwargs["tags"] = tags
    runner = ansible_runner.run(**kwargs)
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else None
    report.run_end(out, progress, summary if tables else None, runner.rc, folder, tables=tables)
    return Run(runner.rc, summary, progress)


class Run:
    """What run_playbook returns."""

    def __init__(self, rc, summary, progress):
        self.rc = rc
        self.summary = summary
        self.progress = progress


class Context:
    def __init__(self, args):
        self.project = proj.find_project(args.project)
        # A path is made absolute here: ansible-runner runs in its own folder, ansible-inventory in the checkout.
        inventory = args.inventory
        self.inventory = str(pathlib.Path(inventory).resolve()) if inventory and os.path.exists(inventory) else inventory
        self._inventory = None

    @property
    def inv(self):
        if self._inventory is None:
            self._inventory = proj.Inventory.load(self.project, self.inventory)
        return self._inventory

    def layers_total(self, hosts=None):
        """How many layer plays a site.yml run over these hosts has: the enabled layers any of them runs."""
        layer_map = proj.layer_groups(self.project)
        wanted = set()
        for host in hosts or self.inv.hosts:
            wanted.update(self.inv.layers_for(host, layer_map))
        return len(wanted)


def cmd_deploy(ctx, args):
    hosts = limited_hosts(ctx, args.limit)
    return run_playbook(ctx, "site.yml", limit=args.limit, layers_total=ctx.layers_total(hosts)).rc


def cmd_repair(ctx, args):
    proj.check_repair(ctx.inv, proj.layer_groups(ctx.project), args.layer, args.node)
    return run_playbook(ctx, "site.yml", limit=args.node, tags=args.layer, layers_total=1).rc


def cmd_add_node(ctx, args):
    names = [n for name in args.names for n in name.split(",") if n]
    proj.check_hosts(ctx.inv, names, "add-node")
    return run_playbook(ctx, "add_node.yml", extravars={"nodes": ",".join(names)},
                        layers_total=ctx.layers_total(names)).rc


def cmd_plan(ctx, args):
    hosts = limited_hosts(ctx, args.limit)
    run = run_playbook(ctx, "site.yml", limit=args.limit, check=True, layers_total=ctx.layers_total(hosts))
    if run.summary is not None:
        report.plan(sys.stdout, run.summary, unseen=args.unseen)
    return run.rc


def cmd_status(ctx, args):
    folder = ctx.project / "build" / "gpulab-runs"
    folder.mkdir(parents=True, exist_ok=True)
    status_file = folder / ("status-%s.json" % datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f"))
    run = run_playbook(ctx, "status.yml", limit=args.limit, extravars={"gpulab_status_file": str(status_file)},
                       tables=False)
    if not status_file.is_file():
        return run.rc or 1
    report.status(sys.stdout, json.loads(status_file.read_text()), ctx.inv)
    # Unreachable hosts are part of the answer (shown in the table), not a failure of the command.
    return 0 if all(f["what"] == "unreachable" for f in run.progress.failures) else run.rc


def limited_hosts(ctx, limit):
    """The hosts a --limit names (comma-separated host names or groups); None without a limit."""
    if not limit:
        return None
    if any(mark in limit for mark in ":!&*~[]"):
        return None  # an Ansible host pattern beyond names and groups: Ansible resolves it (and reports a bad one)
    hosts = []
    for item in limit.split(","):
        members = ctx.inv.groups.get(item, [item] if item in ctx.inv.hostvars else None)
        if members is None:
            raise proj.UsageError("--limit: %s is neither a host nor a group of the inventory; hosts: %s; groups: %s"
                                  % (item, ", ".join(ctx.inv.hosts), ", ".join(sorted(ctx.inv.groups))))
        hosts.extend(members)
    return hosts


def parser():
    top = argparse.ArgumentParser(prog="gpulab", description=__doc__.splitlines()[0])
    top.add_argument("-i", "--inventory", help="inventory (default: the checkout's ansible.cfg)")
    top.add_argument("--project", help="the gpulab.cluster checkout (default: the one gpulab is installed from)")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    deploy = sub.add_parser("deploy", help="run site.yml: every layer the inventory enables")
    deploy.add_argument("--limit", help="only these hosts or groups (comma-separated)")
    deploy.set_defaults(func=cmd_deploy)
    repair = sub.add_parser("repair", help="run one layer on one node (site.yml --tags LAYER --limit NODE)")
    repair.add_argument("layer", metavar="LAYER")
    repair.add_argument("--node", required=True, metavar="NAME")
    repair.set_defaults(func=cmd_repair)
    add = sub.add_parser("add-node", help="add new hosts of the inventory to the cluster (add_node.yml)")
    add.add_argument("names", nargs="+", metavar="NAME")
    add.set_defaults(func=cmd_add_node)
    status = sub.add_parser("status", help="nodes, GPUs, storage, Kubeflow and the schedule, as they are now")
    status.add_argument("--limit", help="only these hosts or groups")
    status.set_defaults(func=cmd_status)
    plan = sub.add_parser("plan", help="what site.yml would change (check mode), per host and layer")
    plan.add_argument("--limit", help="only these hosts or groups (comma-separated)")
    plan.add_argument("--unseen", action="store_true", help="list the tasks check mode could not look at")
    plan.set_defaults(func=cmd_plan)
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        return args.func(Context(args), args)
    except proj.UsageError as error:
        sys.stderr.write("gpulab %s\nNothing was run.\n" % error)
        return 2
