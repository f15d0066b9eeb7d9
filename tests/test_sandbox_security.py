"""Attacks the sandbox must contain, each followed by a check that the pool is still healthy.

These run on the backend the ``backend`` fixture names: bwrap here. Without a working bubblewrap they
fail, saying how to install it, unless RLHUB_ALLOW_NO_BWRAP=1 (then they are skipped). The docker tier
(tests/docker_tier/test_sandbox_docker_attacks.py) collects them again with its own ``backend``, docker.
"""

import os
import socket
from pathlib import Path

import pytest

from rlhub.sandbox import SandboxPool, bwrap_problem
from rlhub.sandbox.backends import ZYGOTE_PATH

SECRET = "rlhub-secret-7f3a9c"
MAX_OUTPUT = 100_000


@pytest.fixture(scope="module")
def backend() -> str:
    """The backend under attack: bwrap, which must work here."""
    problem = bwrap_problem()
    if problem is not None:
        if os.environ.get("RLHUB_ALLOW_NO_BWRAP") == "1":
            pytest.skip(f"bwrap unavailable ({problem}) and RLHUB_ALLOW_NO_BWRAP=1")
        pytest.fail(
            f"the sandbox security tests need bubblewrap: {problem}. Install it "
            "(apt-get install -y bubblewrap), or set RLHUB_ALLOW_NO_BWRAP=1 to skip them."
        )
    return "bwrap"


@pytest.fixture(scope="module")
def pool(backend):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RLHUB_TEST_SECRET", SECRET)  # in our environment when the workers start
        with SandboxPool(workers=2, backend=backend, max_output=MAX_OUTPUT) as pool:
            pool.warm()
            yield pool


def assert_healthy(pool):
    """Both workers still run a normal program correctly."""
    results = pool.run_batch(["print(sum(range(10)))"] * 4)
    assert [(r.status, r.stdout) for r in results] == [("ok", "45\n")] * 4


def test_infinite_loop_times_out(pool):
    assert pool.run("while True:\n    pass", timeout=0.5).status == "timeout"
    assert_healthy(pool)


def test_fork_bomb_is_contained(pool):
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    result = pool.run(bomb, timeout=1)
    assert result.status in ("timeout", "error", "killed")
    assert pool.run("import os; print(len([p for p in os.listdir('/proc') if p.isdigit()]))").stdout == "2\n"
    assert_healthy(pool)


def test_memory_bomb_hits_the_memory_limit(pool):
    result = pool.run("x = bytearray(2 * 1024**3)", memory_mb=256)
    assert result.status == "memory"
    result = pool.run("chunks = []\nwhile True:\n    chunks.append(' ' * 10**7)", memory_mb=256)
    assert result.status == "memory"
    assert_healthy(pool)


def test_huge_output_is_capped(pool):
    result = pool.run("while True:\n    print('spam' * 1000)", timeout=5)
    assert result.status == "output_limit" and result.truncated
    assert len(result.stdout) == MAX_OUTPUT
    assert_healthy(pool)


@pytest.mark.parametrize(
    "target",
    ["/work/pwned", "/etc/pwned", "/home/pwned", "/root/pwned", "/usr/pwned", "/pwned", "/opt/rlhub/pwned"],
)
def test_writes_outside_the_sandbox_fail(pool, target):
    code = f"open({target!r}, 'w').write('pwned')\nprint('wrote')"
    result = pool.run(code)
    assert result.status == "error" and "wrote" not in result.stdout
    assert result.stderr.rstrip().splitlines()[-1].split(":")[0] in ("PermissionError", "OSError", "FileNotFoundError")
    assert not Path(target).exists()
    assert_healthy(pool)


def test_host_checkout_is_invisible_and_untouched(pool):
    here = str(Path(__file__).resolve())
    result = pool.run(f"import os\nprint(os.path.exists({here!r}), os.path.exists('/work'))")
    assert result.stdout == "False False\n"


def test_host_environment_is_not_visible(pool):
    code = """
import os
seen = repr(dict(os.environ))
for path in ('/proc/self/environ', '/proc/1/environ'):
    try:
        seen += open(path, 'rb').read().decode(errors='replace')
    except OSError as exc:
        seen += type(exc).__name__
print(seen)
"""
    result = pool.run(code)
    assert result.status == "ok"
    assert SECRET not in result.stdout and "RLHUB_TEST_SECRET" not in result.stdout
    assert "/root" not in result.stdout  # not even the host's HOME


def test_home_directory_is_not_readable(pool):
    code = """
import os
for path in ('/root', os.path.expanduser('~'), '/home'):
    try:
        print(path, os.listdir(path))
    except OSError as exc:
        print(path, type(exc).__name__)
"""
    lines = pool.run(code).stdout.splitlines()
    assert lines[0] in ("/root FileNotFoundError", "/root PermissionError", "/root []")
    assert lines[1] == "/tmp/work []"  # HOME is the program's own empty working directory
    assert lines[2] in ("/home FileNotFoundError", "/home []")


def test_no_network_not_even_to_the_hosts_loopback(pool):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = f"""
import socket
for address in [('127.0.0.1', {port}), ('8.8.8.8', 53), ('1.1.1.1', 443)]:
    try:
        socket.create_connection(address, timeout=1)
        print('connected', address)
    except OSError as exc:
        print('refused', type(exc).__name__)
"""
        result = pool.run(code, timeout=5)
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing ever reached our listening socket
    assert result.status == "ok" and result.stdout.count("refused") == 3
    assert_healthy(pool)


@pytest.mark.parametrize(
    "code, refusal",
    [
        ("import os, signal; os.kill(os.getppid(), signal.SIGKILL)", "PermissionError"),
        ("import os, signal; os.kill(1, signal.SIGKILL)", "PermissionError"),
        # -1 is every process the sender may signal: there is none (only the zygote and the program itself).
        ("import os, signal; os.kill(-1, signal.SIGKILL)", "ProcessLookupError"),
        (
            "import os, signal\nfor sig in (signal.SIGTERM, signal.SIGINT, signal.SIGSTOP):\n    os.kill(-1, sig)",
            "ProcessLookupError",
        ),
        (
            "import os, signal\nhit = 0\nfor pid in set(range(1, 400)) - {os.getpid()}:\n"
            "    try:\n        os.kill(pid, signal.SIGKILL)\n        hit += 1\n    except OSError:\n        pass\n"
            "print('signalled', hit)",
            None,
        ),
    ],
)
def test_signals_cannot_reach_the_worker_or_the_host(pool, code, refusal):
    result = pool.run(code)
    if refusal is None:
        assert (result.status, result.stdout) == ("ok", "signalled 0\n")  # no pid but its own answered
    else:
        last_line = result.stderr.strip().splitlines()[-1]
        assert result.status == "error" and last_line.startswith(f"{refusal}: [Errno "), result.stderr
    assert_healthy(pool)  # the test process is alive too, or it would not get here


def test_ptrace_of_the_worker_is_refused(pool):
    attach = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nprint(libc.ptrace(16, 1, 0, 0), ctypes.get_errno())"
    )
    assert pool.run(attach).stdout == "-1 1\n"  # PTRACE_ATTACH to PID 1: EPERM


def test_detached_processes_do_not_survive_their_program(backend):
    escape = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.setpgid(0, 0)
        print(os.getpid(), flush=True)
        time.sleep(60)
    os._exit(0)
time.sleep(0.2)
"""
    with SandboxPool(workers=1, backend=backend) as one:
        escaped = one.run(escape)
        assert escaped.status == "ok"
        pid = int(escaped.stdout)
        assert one.run(f"import os\nprint(os.path.exists('/proc/{pid}'))").stdout == "False\n"
        timed_out = one.run(escape.replace("time.sleep(0.2)", "time.sleep(60)"), timeout=0.5)
        assert timed_out.status == "timeout"
        assert one.run(f"import os\nprint(os.path.exists('/proc/{int(timed_out.stdout)}'))").stdout == "False\n"


def test_deleting_the_workers_files_fails_and_harms_nothing(pool):
    code = """
import os, shutil
for path in ('/opt/rlhub/zygote.py', '/opt/rlhub/python', '/usr/bin/env', '/proc/1/exe'):
    try:
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        print('deleted', path)
    except OSError as exc:
        print('kept', path, type(exc).__name__)
for name in os.listdir('/tmp'):
    shutil.rmtree(os.path.join('/tmp', name), ignore_errors=True)
"""
    result = pool.run(code)
    assert "deleted" not in result.stdout
    assert ZYGOTE_PATH.exists()
    assert_healthy(pool)


# ----------------------------------------------------------------------------- tampering with run_tests

SOLUTION = "def add(a, b):\n    return a + b\n"
TESTS = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"


def test_correct_solution_passes_and_wrong_one_fails(pool):
    verdict = pool.run_tests(SOLUTION, TESTS)
    assert verdict and verdict.passed and verdict.result.status == "ok"
    assert not pool.run_tests("def add(a, b):\n    return a - b\n", TESTS)


@pytest.mark.parametrize(
    "cheat",
    [
        "import sys\nsys.exit(0)",
        "import os\nos._exit(0)",
        "raise SystemExit",
        "print('All tests passed')\nimport os\nos._exit(0)",
        "import secrets\nprint(secrets.token_hex(16))\nimport sys\nsys.exit(0)",
        "import builtins\nbuiltins.AssertionError = type('Quiet', (Exception,), {})",
        "AssertionError = None",
        "import builtins\nbuiltins.print = lambda *a, **k: None",
        "import atexit, os\natexit.register(lambda: os._exit(0))",
        "import sys\nsys.excepthook = lambda *a: None",
        "x = '''",  # try to swallow the tests into a string
        "if False:",  # try to swallow the tests into a dead block
    ],
)
def test_tampering_does_not_pass_failing_tests(pool, cheat):
    broken = "def add(a, b):\n    return 0\n"
    assert not pool.run_tests(broken + cheat, TESTS)


def test_early_exit_is_reported_as_it_happened(pool):
    result = pool.run("import os\nprint('All tests passed', flush=True)\nos._exit(0)")
    assert (result.status, result.stdout) == ("ok", "All tests passed\n")


# ----------------------------------------------------------------------------- forging a pass by introspection

LIARS = """
class Anything:
    def __eq__(self, other):
        return True

class LyingInt(int):
    def __eq__(self, other):
        return True

class LyingStr(str):
    def __eq__(self, other):
        return True

def anything():
    return Anything()

def lying_int():
    return LyingInt(0)

def lying_str():
    return LyingStr("")

def nested():
    return [1, (2, LyingInt(3))]
"""


FIND_TOKEN = """
import os, re, sys

def _tokens(values):
    for value in values:
        if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{32}", value):
            yield value
        elif isinstance(value, dict):
            yield from _tokens(value.values())

def _forge(found):
    for token in found:
        os.write(1, f"\\n{token}\\n".encode())
        os._exit(0)
"""
FORGERIES = {
    "frame walking": FIND_TOKEN
    + """
frame = sys._getframe(0)
found = []
while frame is not None:
    found += _tokens(frame.f_locals.values())
    frame = frame.f_back
_forge(found)
""",
    "traceback frames": FIND_TOKEN
    + """
try:
    raise ValueError
except ValueError as exc:
    frame = exc.__traceback__.tb_frame
found = []
while frame is not None:
    found += _tokens(frame.f_locals.values())
    frame = frame.f_back
_forge(found)
""",
    "gc scanning": FIND_TOKEN + "import gc\n_forge(_tokens(gc.get_objects()))\n",
    "gc referrers": FIND_TOKEN + "import gc\n_forge(_tokens(gc.get_referrers(sys.modules)))\n",
    "tracing": FIND_TOKEN
    + """
def tracer(frame, event, arg):
    found = []
    while frame is not None:
        found += _tokens(frame.f_locals.values())
        frame = frame.f_back
    _forge(found)
sys.settrace(tracer)
def add(a, b):
    return 0
""",
    "ctypes": "import ctypes\nctypes.string_at(id(0), 8)\n",
    "process memory": "open('/proc/self/mem', 'rb')\n",
    "a fresh interpreter": "import subprocess, sys\nsubprocess.run([sys.executable, '-c', 'pass'])\n",
    "fork": "import os\nos.fork()\n",
}


ASSERTS_IN_SANDBOX = "one = 1\nassert add(one, 2) == 3\n"  # uses a name the tests bind: it does not convert


@pytest.mark.parametrize("tests", [TESTS, ASSERTS_IN_SANDBOX], ids=["converted", "asserts in the sandbox"])
@pytest.mark.parametrize("name", FORGERIES)
def test_run_tests_refuses_the_introspection_a_forgery_needs(pool, name, tests):
    assert pool.run_tests(SOLUTION, tests)
    verdict = pool.run_tests("def add(a, b):\n    return 0\n" + FORGERIES[name], tests)
    assert not verdict.passed, verdict.result
    assert "refuses" in verdict.result.stderr or name == "tracing"


@pytest.mark.parametrize("liar", ["anything", "lying_int", "lying_str"])
def test_run_tests_fails_results_whose_comparisons_lie(pool, liar):
    code = LIARS + f"def add(a, b):\n    return {liar}()\n"
    verdict = pool.run_tests(code, TESTS)
    assert not verdict.passed and verdict.result.status == "ok"  # it ran; its results could not be reported


def test_the_audit_hook_leaves_the_standard_library_working_in_a_test_run(pool):
    code = SOLUTION + (
        "import collections, enum, logging, typing\n"
        "Point = collections.namedtuple('Point', 'x y')\n"
        "Color = enum.Enum('Color', 'RED GREEN')\n"
        "T = typing.TypeVar('T')\n"
        "logging.getLogger('x').warning('still logging')\n"
    )
    verdict = pool.run_tests(code, TESTS + "assert Point(1, 2).y == 2 and Color.RED.value == 1\n")
    assert verdict.passed, verdict.result
    assert "still logging" in verdict.result.stderr


def test_plain_programs_keep_frames_and_fork(pool):
    result = pool.run(
        "import os, sys\nprint(sys._getframe(0).f_code.co_name)\nos.waitpid(os.fork() or 0, 0) if 0 else None"
    )
    assert (result.status, result.stdout) == ("ok", "<module>\n")


# ----------------------------------------------------------------------------- run_calls


def test_run_calls_returns_exact_values_and_refuses_every_other_type(pool):
    code = SOLUTION + LIARS + "def every_type():\n    return [True, 1, 1.5, 'a', None, (1,), {2}, {'k': [3]}]\n"
    calls = ["add(1, 2)", "every_type()", "anything()", "lying_int()", "lying_str()", "nested()", "add('a', 1)"]
    outcome = pool.run_calls(code, calls)
    values = [c.value for c in outcome.calls]
    assert [c.ok for c in outcome.calls] == [True, True, False, False, False, False, False]
    assert values[:2] == [3, [True, 1, 1.5, "a", None, (1,), {2}, {"k": [3]}]]
    assert type(values[1][5]) is tuple and type(values[1][6]) is set and type(values[1][0]) is bool
    assert "not one of" in outcome.calls[3].error and "TypeError" in outcome.calls[6].error


def test_run_calls_fails_the_calls_a_program_does_not_reach(pool):
    outcome = pool.run_calls(
        "def f(x):\n    if x == 2:\n        while True: pass\n    return x\n", ["f(1)", "f(2)", "f(3)"], timeout=1
    )
    assert outcome.result.status == "timeout"
    assert [c.ok for c in outcome.calls] == [True, False, False] and outcome.calls[0].value == 1
    early = pool.run_calls("import os\nos._exit(0)\ndef f():\n    return 1\n", ["f()"])
    assert not early.calls[0].ok and early.calls[0].error.startswith("not run")


def test_forged_result_lines_decode_to_plain_values_only(pool):
    forged = 'import os\nos.write(4, b\'{"i":0,"v":{"set":[[1]]}}\\n{"i":1,"v":{"tuple":[7]}}\\n{"i":1,"v":8}\\n\')\n'
    outcome = pool.run_calls(forged + "def f():\n    return 0\n", ["f()", "f()"])
    assert not outcome.calls[0].ok  # an unhashable set member is malformed, not an object
    assert outcome.calls[1].ok and outcome.calls[1].value == (7,)  # the first line counts: a value it could return


# ----------------------------------------------------------------------------- run_tests(isolate=...)

PRELUDE = "def encode(s):\n    return s[::-1]\n\n\ndef decode(s):\n    '''The stub the solution completes.'''\n"
ROUND_TRIP = (
    "def check(candidate):\n    for word in ['abc', 'hello']:\n        assert candidate(encode(word)) == word\n"
    "\n\ncheck(decode)\n"
)


@pytest.mark.parametrize(
    "forgery",
    [
        LIARS + "def decode(s):\n    return anything()\n",
        LIARS + "def decode(s):\n    return lying_str()\n",
        "def encode(s):\n    return s\n\n\ndef decode(s):\n    return s\n",  # rebinds the tests' helper
        FORGERIES["frame walking"] + "def decode(s):\n    return s\n",
        FORGERIES["gc scanning"] + "def decode(s):\n    return s\n",
    ],
    ids=["always equal", "lying str", "patched helper", "frame walking", "gc scanning"],
)
def test_isolated_tests_call_the_solution_across_a_process_boundary(pool, forgery):
    honest = PRELUDE + "def decode(s):\n    return s[::-1]\n"
    assert pool.run_tests(honest, ROUND_TRIP, isolate=["decode"], test_prelude=PRELUDE)
    verdict = pool.run_tests(PRELUDE + forgery, ROUND_TRIP, isolate=["decode"], test_prelude=PRELUDE)
    assert not verdict.passed, verdict.result
    if "FIND_TOKEN" not in forgery and "_forge" not in forgery:  # in one process, the same asserts are fooled
        assert pool.run_tests(PRELUDE + forgery, ROUND_TRIP)
