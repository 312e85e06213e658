"""
benchlib.py - what the Python halves of the benchmarks share.

  systems(specs)          the --system NAME:PORT:CGROUP arguments as (name, port, cgroup)
  body_text(size, rnd, words)
                          a text body of about size bytes of CRLF lines of words
  add_run_args(parser), dispatch(ap, fill, run)
                          the "run" subcommand's --cpu, --system and --markdown; calling
                          fill or run by the subcommand given
  Table(names)            the Markdown table of medians, one column per system and,
                          with two systems, their ratio (first / second)
  private_instance(prefix, config)
                          a Postern instance of the integration harness on free
                          loopback ports in a new /var/tmp directory, for the
                          single-system benchmarks (imap_large.py, imap_idle_mem.py)

Used by imap_bench.py, pop3_bench.py, imap_large.py and imap_idle_mem.py
(run from bench/, which is on sys.path as the scripts' own directory).
Owns nothing beyond what private_instance() starts; never times anything.
"""
import contextlib
import os
import subprocess
import sys
import tempfile

INTEGRATION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration")


def systems(specs):
    out = []
    for s in specs:
        name, port, cg = s.split(":", 2)
        out.append((name, int(port), cg))
    return out


def add_run_args(r):
    r.add_argument("--cpu", default="procstat")
    r.add_argument("--system", action="append", required=True, help="NAME:PORT:CGROUP")
    r.add_argument("--markdown")


def dispatch(ap, fill, run):
    args = ap.parse_args()
    if args.what == "fill":
        fill(args)
    else:
        run(args)


def body_text(size, rnd, words):
    lines, n = [], 0
    while n < size:
        ln = " ".join(rnd.choice(words) for _ in range(rnd.randint(4, 14)))
        lines.append(ln)
        n += len(ln) + 2
    return "\r\n".join(lines) + "\r\n"


class Table:
    """Rows of one value per system; a value may be None (shown as '-')."""

    def __init__(self, names):
        self.names = names
        self.two = len(names) == 2
        self.out = ["| | " + " | ".join(names) + (" | ratio |" if self.two else " |"),
                    "|---" * (len(names) + 1 + self.two) + "|"]

    def row(self, label, vals, fmt):
        cells = [fmt.format(v) if v is not None else "-" for v in vals]
        ratio = ""
        if self.two:
            ratio = f" | {vals[0] / vals[1]:.2f}" if vals[0] is not None and vals[1] else " | -"
        self.out.append(f"| {label} | " + " | ".join(cells) + ratio + " |")

    def line(self, text):
        """A row written as it is."""
        self.out.append(text)

    def emit(self, title, markdown=None):
        """Print the title and the table; also write the table to markdown when given."""
        text = "\n".join(self.out)
        print(title)
        print(text)
        if markdown:
            with open(markdown, "w") as f:
                f.write(text + "\n")


class _Run:
    def __init__(self, inst, base):
        self.inst = inst
        self.base = base
        self.ok = True   # set False to keep the directory (and exit 1)


@contextlib.contextmanager
def private_instance(prefix, config):
    """Started on entry; on exit stopped, its directory removed unless run.ok was set False."""
    if INTEGRATION not in sys.path:
        sys.path.insert(0, INTEGRATION)
    from dnsstub import DnsStub
    from harness import Instance
    dns = DnsStub()
    dns.start()
    base = tempfile.mkdtemp(prefix=prefix, dir="/var/tmp")
    os.chmod(base, 0o755)
    inst = Instance(base, dns.port, config, None)
    inst.start()
    run = _Run(inst, base)
    try:
        yield run
    finally:
        inst.stop(check=False)
        dns.stop()
        if run.ok:
            subprocess.run(["rm", "-rf", base])
        else:
            print(f"kept {base}")
