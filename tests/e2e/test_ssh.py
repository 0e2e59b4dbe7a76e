"""The SSH family through MCP with the official Python SDK (issue #13), on a real
OpenSSH sshd started by the Rust harness (`target/debug/ssh-harness`,
tests/src/sshd.rs), in both protocol modes. What policy permits runs and leaves
its mark on the host; a chained command, a hidden sudo and a raw shell are refused
and leave none; stdout is masked and so is the recording auditors fetch; a long
command sends progress notifications; a timed-out command leaves no process on the
host; a host presenting another key is refused; the server's private key appears
in no result, the server log or the audit record."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

import harness
from conftest import call, mcp_client

pytestmark = pytest.mark.anyio

CARD = "4111 1111 1111 1111"

POLICY = """
@id("ssh-connect")
permit (principal, action == Tollgate::Action::"connect", resource);
@id("ssh-agents-plain")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"ssh:exec", resource)
when { ["touch", "printf", "sleep", "uname", "cat", "false"].containsAll(context.runs)
       && !context.sudo && !context.shell };
@id("ssh-no-raw-shell")
forbid (principal, action == Tollgate::Action::"ssh:shell", resource);
@id("ssh-auditors")
permit (principal in Tollgate::Group::"auditors", action == Tollgate::Action::"audit:read", resource == Tollgate::Audit::"log");
"""


class SshHarness(harness.HarnessBinary):
    """The harness's sshd: address, user, the client key and the host keys."""

    def __init__(self) -> None:
        super().__init__("ssh-harness", "needs openssh-server: apt-get install -y openssh-server")
        info = self.info
        self.port, self.user = info["port"], info["user"]
        self.key_pem, self.host_key, self.other_host_key = (
            info["client_key_pem"], info["host_key"], info["other_host_key"])


class SshTollgate(harness.Tollgate):
    """`tollgate serve` with `web` (pinned to the sshd's key) and `impostor`
    (pinned to another key) connections to the harness's sshd."""

    def __init__(self, pg: harness.Postgres, sshd: SshHarness) -> None:
        self.sshd = sshd
        super().__init__(pg)

    def write_config(self) -> None:
        (self.dir / "policies").mkdir(exist_ok=True)
        (self.dir / "policies" / "ssh.cedar").write_text(POLICY)
        key = self.dir / "deploy.key"
        key.write_text(self.sshd.key_pem)
        key.chmod(0o600)

        def conn(name: str, host_key: str) -> str:
            return (f'[[connection]]\nname = "{name}"\nkind = "ssh"\nhost = "127.0.0.1"\n'
                    f'port = {self.sshd.port}\nuser = "{self.sshd.user}"\n'
                    f'private_key = "${{file:{key}}}"\nhost_key = "{host_key}"\ntimeout = "20s"\n')

        self.config.write_text(self.config_head() + f"""
{conn("web", self.sshd.host_key)}
{conn("impostor", self.sshd.other_host_key)}""")


@pytest.fixture(scope="module")
def sshd():
    s = SshHarness()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def ssh_server(pg, sshd):
    s = SshTollgate(pg, sshd)
    try:
        s.start()
        yield s
    finally:
        s.cleanup()


@pytest.fixture
def marks():
    d = Path(tempfile.mkdtemp(prefix="ssh-marks-"))
    d.chmod(0o777)
    return d


async def test_permitted_command_runs_and_refused_ones_leave_no_mark(ssh_server, mode, marks):
    token = ssh_server.token("agent-ssh", ["agents"])
    made, chained = marks / "made", marks / "chained"
    async with mcp_client(ssh_server.mcp_url, token, mode) as c:
        ok = await call(c, "ssh_exec", {"connection": "web", "argv": ["touch", str(made)]})
        refused = [
            await call(c, "ssh_exec", {"connection": "web", "command": f"uname -a; touch {chained}"}),
            await call(c, "ssh_exec", {"connection": "web", "command": f"uname `touch {chained}`"}),
            await call(c, "ssh_exec", {"connection": "web", "argv": ["env", "X=1", "sudo", "touch", str(chained)]}),
            await call(c, "ssh_exec", {"connection": "web", "argv": ["bash", "-lc", f"touch {chained}"]}),
        ]
        failed = await call(c, "ssh_exec", {"connection": "web", "argv": ["false"]})
    assert not ok.is_error, ok.structured_content
    sc = ok.structured_content
    assert {"exit_code", "stdout", "stderr", "truncated", "duration_ms"} <= sc.keys(), sc
    assert sc["exit_code"] == 0 and made.exists()
    for r in refused:
        assert r.is_error and r.structured_content["error"]["code"] == "denied", r.structured_content
    assert not chained.exists(), "a refused command ran on the host"
    assert not failed.is_error and failed.structured_content["exit_code"] == 1, failed.structured_content


async def test_output_and_recording_are_masked_and_auditors_can_replay(ssh_server, auditor_token):
    token = ssh_server.token("agent-ssh", ["agents"])
    async with mcp_client(ssh_server.mcp_url, token, "auto") as c:
        r = await call(c, "ssh_exec", {"connection": "web", "argv": ["printf", f"first\\ncard {CARD}\\n"]})
    assert not r.is_error, r.structured_content
    assert r.structured_content["stdout"].startswith("first\ncard "), r.structured_content
    assert CARD not in r.content[0].text
    out = ssh_server.cli("audit", "export", "--config", str(ssh_server.config), "--format", "jsonl")
    events = [json.loads(line) for line in out.stdout.splitlines() if '"ssh_exec"' in line and "printf" in line]
    assert events and "recording" in events[-1], out.stdout[-2000:]
    ev = events[-1]
    req = urllib.request.Request(f"{ssh_server.base}/api/audit/{ev['id']}/recording",
                                 headers={"Authorization": f"Bearer {ssh_server.token('audra', ['auditors'])}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read().decode()
    assert len(body.encode()) == ev["recording"]["bytes"]
    header = json.loads(body.splitlines()[0])
    assert header["version"] == 2, header
    assert "first" in body and CARD not in body, body
    # An agent may not fetch it.
    req = urllib.request.Request(f"{ssh_server.base}/api/audit/{ev['id']}/recording",
                                 headers={"Authorization": f"Bearer {token}"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 403


async def test_long_command_sends_progress_and_timeout_leaves_no_process(ssh_server):
    token = ssh_server.token("agent-ssh", ["agents"])
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with mcp_client(ssh_server.mcp_url, token, "legacy") as c:
        r = await c.call_tool("ssh_exec", {"connection": "web", "argv": ["sleep", "2.5"]},
                              progress_callback=on_progress)
        assert not r.is_error, r.structured_content
        assert len(seen) >= 1, "no progress notification during a 2.5 s command"
        r = await call(c, "ssh_exec", {"connection": "web", "argv": ["sleep", "300.5151"], "timeout_seconds": 1})
    assert r.is_error and "timed out" in r.structured_content["error"]["message"], r.structured_content
    deadline = time.time() + 10
    while subprocess.run(["pgrep", "-f", "300.5151"], capture_output=True).stdout:
        assert time.time() < deadline, "the timed-out command is still running on the host"
        time.sleep(0.1)


async def test_host_key_mismatch_refused_and_private_key_nowhere(ssh_server, sshd, marks):
    token = ssh_server.token("agent-ssh", ["agents"])
    async with mcp_client(ssh_server.mcp_url, token, "auto") as c:
        r = await call(c, "ssh_exec", {"connection": "impostor", "argv": ["touch", str(marks / "impostor")]})
    assert r.is_error and "host key" in r.structured_content["error"]["message"], r.structured_content
    assert not (marks / "impostor").exists()
    key_body = sshd.key_pem.splitlines()[1]
    assert key_body not in r.content[0].text
    log = ssh_server.log()
    assert "DEBUG" in log, "the server did not log at debug, so this check proves nothing"
    assert key_body not in log, "the server log holds the private key"
    out = ssh_server.cli("audit", "export", "--config", str(ssh_server.config), "--format", "jsonl")
    assert out.returncode == 0 and '"ssh_exec"' in out.stdout, out.stderr
    assert key_body not in out.stdout, "the audit export holds the private key"
