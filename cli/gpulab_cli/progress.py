"""What a long run is doing, as it does it: ansible-runner events turned into a progress bar and per-layer lines.

On a terminal one line is redrawn (layers done of the total, the layer, its task, hosts answered); every finished
play leaves a line with its hosts, changes, failures and seconds. Elsewhere (CI, a pipe) only the finished lines.
Failures and unreachable hosts are printed when they happen and kept for the end of the run.
"""
import re
import shutil
import time

LAYER_PLAY = re.compile(r"^Layer (\w+):")
RESULTS = ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")


class Play:
    """One play of the run and what its hosts reported."""

    def __init__(self, name, started):
        match = LAYER_PLAY.match(name)
        self.layer = match.group(1) if match else None
        self.name = self.layer or name
        self.started = started
        self.seconds = 0.0
        self.hosts = set()
        self.changed = set()
        self.failed = set()
        self.unreachable = set()

    def line(self):
        flags = []
        if self.changed:
            flags.append("changed on %d" % len(self.changed))
        if self.failed:
            flags.append("FAILED on %s" % ", ".join(sorted(self.failed)))
        if self.unreachable:
            flags.append("UNREACHABLE %s" % ", ".join(sorted(self.unreachable)))
        return "%s %-28s %3d hosts %7.1f s  %s" % (
            "layer" if self.layer else "play ", self.name[:28], len(self.hosts), self.seconds,
            "; ".join(flags) or "no change")


class Progress:
    """An ansible-runner event_handler; `layers_total` is how many layer plays the run will have (0: unknown)."""

    def __init__(self, stream, layers_total=0, tty=None, clock=time.monotonic):
        self.stream = stream
        self.layers_total = layers_total
        self.tty = stream.isatty() if tty is None else tty
        self.clock = clock
        self.plays = []
        self.failures = []
        self.task = ""
        self.task_hosts = set()
        self._drawn = False

    @property
    def current(self):
        return self.plays[-1] if self.plays else None

    def layers_done(self):
        return sum(1 for play in self.plays if play.layer and play.hosts and play.seconds)  # finished layer plays

    def __call__(self, event):
        self.handle(event.get("event", ""), event.get("event_data", {}) or {})
        return True

    def handle(self, kind, data):
        if kind == "playbook_on_play_start":
            self._finish_play()
            self.plays.append(Play(str(data.get("play", "")).strip(), self.clock()))
            self.task, self.task_hosts = "", set()
        elif kind == "playbook_on_task_start":
            self.task, self.task_hosts = str(data.get("task", "")), set()
        elif kind in RESULTS and self.current is not None:
            self._result(kind, data)
        elif kind == "playbook_on_stats":
            self._finish_play()
            self._clear()
            return
        else:
            return
        self._draw()

    def _result(self, kind, data):
        play, host = self.current, str(data.get("host", "?"))
        play.hosts.add(host)
        self.task_hosts.add(host)
        res = data.get("res") or {}
        if kind == "runner_on_ok" and res.get("changed"):
            play.changed.add(host)
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            play.failed.add(host)
            self._failure(host, "failed", data, res)
        elif kind == "runner_on_unreachable":
            play.unreachable.add(host)
            self._failure(host, "unreachable", data, res)

    def _failure(self, host, what, data, res):
        message = res.get("msg") or res.get("stderr") or res.get("reason") or ""
        failure = {"host": host, "what": what, "play": self.current.name, "task": str(data.get("task", "")),
                   "msg": " ".join(str(message).split())}
        self.failures.append(failure)
        self._clear()
        self.stream.write("%s %s [%s] %s: %s\n" % (what.upper(), host, failure["play"], failure["task"],
                                                   failure["msg"]))
        self.stream.flush()

    def _finish_play(self):
        play = self.current
        if play is None or play.seconds:
            return
        play.seconds = max(self.clock() - play.started, 0.001)
        if play.hosts:  # a play no host of this run is in (a layer not enabled) says nothing
            self._clear()
            self.stream.write(play.line() + "\n")
            self.stream.flush()

    def progress_bar(self, width=20):
        done = self.layers_done()
        if not self.layers_total:
            return "[%s] play %d" % ("." * width, len(self.plays))
        total = max(self.layers_total, done)  # add-node: the other hosts' layers may come on top of the estimate
        filled = min(width, int(width * done / total))
        return "[%s%s] %d/%d layers" % ("#" * filled, "-" * (width - filled), done, total)

    def status_line(self):
        play = self.current
        if play is None:
            return ""
        return "%s  %s  %s  %d/%d hosts" % (self.progress_bar(), play.name, self.task, len(self.task_hosts), len(play.hosts))

    def _draw(self):
        if not self.tty:
            return
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write("\r" + self.status_line()[:width].ljust(width))
        self.stream.flush()
        self._drawn = True

    def _clear(self):
        if self.tty and self._drawn:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r" + " " * width + "\r")
            self._drawn = False

    def layer_rows(self):
        """(name, hosts, changed hosts, failed hosts, seconds) per finished play that reached a host."""
        return [(p.name, len(p.hosts), len(p.changed), len(p.failed | p.unreachable), p.seconds)
                for p in self.plays if p.hosts]
