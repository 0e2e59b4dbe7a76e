"""The Kubernetes family through MCP with the official Python SDK (issue #12),
on a real kube-apiserver started by the Rust harness (`target/debug/kube-harness`,
tests/src/kube.rs), in both protocol modes. The adversarial cases of the issue
that reads can reach: Secret values via list, get, an all-namespaces list, alias
spellings and the last-applied annotation come back masked; names shaped like
flags or paths, a namespace outside the connection's list and objects in
kube-system are refused; an unknown kind is denied; the connection's token
appears in no result, the server log or the audit record."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.request

import pytest

import harness
from conftest import call, mcp_client

pytestmark = pytest.mark.anyio

PASSWORD = "e2e-K8s-S3cret-Value-91"
ENV_PASSWORD = "e2e-env-hunter2-55"
B64 = base64.b64encode(PASSWORD.encode()).decode()

POLICY = """
@id("k8s-agents-connect")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource);
@id("k8s-agents-read")
permit (principal in Tollgate::Group::"agents",
        action in [Tollgate::Action::"k8s:get", Tollgate::Action::"k8s:list"],
        resource);
@id("k8s-hands-off-kube-system")
forbid (principal, action, resource in Tollgate::Namespace::"wide/kube-system");
"""


class KubeApi(harness.HarnessBinary):
    """The harness's apiserver: its address, CA and tokens, and an admin client."""

    def __init__(self) -> None:
        super().__init__("kube-harness", "needs etcd and kube-apiserver: run `bash tests/install-kube.sh` as root")
        info = self.info
        self.url, self.ca_file = info["url"], info["ca_file"]
        self.admin, self.restricted = info["admin_token"], info["restricted_token"]
        self.tls = ssl.create_default_context(cafile=self.ca_file)

    def post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {self.admin}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=self.tls, timeout=30) as r:
            return json.loads(r.read())


class KubeTollgate(harness.Tollgate):
    """`tollgate serve` with two connections to the apiserver: `k8s` limited to
    namespaces shop and web, `wide` unrestricted (policy keeps it out of kube-system)."""

    def __init__(self, pg: harness.Postgres, kube: KubeApi) -> None:
        self.kube = kube
        super().__init__(pg)

    def write_config(self) -> None:
        (self.dir / "policies").mkdir(exist_ok=True)
        (self.dir / "policies" / "k8s.cedar").write_text(POLICY)
        token_file = self.dir / "k8s.token"
        token_file.write_text(self.kube.admin)
        token_file.chmod(0o600)
        conn = f'kind = "kubernetes"\nserver = "{self.kube.url}"\nca_file = "{self.kube.ca_file}"\ntoken = "${{file:{token_file}}}"\n'
        self.config.write_text(self.config_head() + f"""
[[connection]]
name = "k8s"
{conn}namespaces = ["shop", "web"]

[[connection]]
name = "wide"
{conn}""")


@pytest.fixture(scope="module")
def kube():
    k = KubeApi()
    try:
        for ns in ("shop", "web", "other"):
            k.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for ns in ("shop", "web", "other", "kube-system"):
            k.post(f"/api/v1/namespaces/{ns}/secrets", {
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "db", "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration":
                        json.dumps({"stringData": {"password": PASSWORD}})}},
                "stringData": {"password": PASSWORD}})
        k.post("/apis/apps/v1/namespaces/shop/deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "app", "image": "nginx:1.25",
                                                           "env": [{"name": "DB_PASSWORD", "value": ENV_PASSWORD}]}]}}}})
        yield k
    finally:
        k.stop()


@pytest.fixture(scope="module")
def kube_server(pg, kube):
    s = KubeTollgate(pg, kube)
    try:
        s.start()
        yield s
    finally:
        s.cleanup()


def assert_no_secret(text: str, where: str) -> None:
    for what, value in (("Secret value", PASSWORD), ("Secret value (base64)", B64),
                        ("env password", ENV_PASSWORD)):
        assert value not in text, f"{where} holds the {what}: {text[:2000]}"


@pytest.mark.parametrize("spelling", ["Secret", "secret", "secrets", "v1/Secret"])
async def test_secret_values_masked_in_list_and_get_by_any_spelling(kube_server, mode, spelling):
    token = kube_server.token("agent-k8s", ["agents"])
    async with mcp_client(kube_server.mcp_url, token, mode) as c:
        listed = await call(c, "k8s_list", {"connection": "k8s", "kind": spelling, "namespace": "shop"})
        got = await call(c, "k8s_get", {"connection": "k8s", "kind": spelling, "name": "db", "namespace": "shop"})
    for r in (listed, got):
        assert not r.is_error, r.structured_content
        assert_no_secret(r.content[0].text, spelling)
    obj = got.structured_content["object"]
    assert obj["kind"] == "Secret" and obj["data"]["password"] == "[K8S_SECRET]", obj
    annotation = obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    assert annotation == "[K8S_SECRET]", obj
    assert "managedFields" not in obj["metadata"], obj
    items = listed.structured_content["items"]
    assert [i["metadata"]["name"] for i in items] == ["db"], items


async def test_all_namespaces_list_returns_no_secret_value_and_skips_kube_system(kube_server, mode):
    token = kube_server.token("agent-k8s", ["agents"])
    async with mcp_client(kube_server.mcp_url, token, mode) as c:
        limited = await call(c, "k8s_list", {"connection": "k8s", "kind": "secrets"})
        wide = await call(c, "k8s_list", {"connection": "wide", "kind": "secrets"})
        ks = await call(c, "k8s_get", {"connection": "wide", "kind": "Secret", "name": "db", "namespace": "kube-system"})
    for r in (limited, wide):
        assert not r.is_error, r.structured_content
        assert_no_secret(r.content[0].text, "an all-namespaces list")
    namespaces = lambda r: sorted({i["metadata"]["namespace"] for i in r.structured_content["items"]})  # noqa: E731
    assert namespaces(limited) == ["shop", "web"], limited.structured_content
    assert "kube-system" not in namespaces(wide) and {"shop", "web", "other"} <= set(namespaces(wide))
    assert ks.is_error and ks.structured_content["error"]["code"] == "denied", ks.structured_content
    assert "k8s-hands-off-kube-system" in ks.structured_content["error"]["policies"]


async def test_env_credentials_masked_in_workloads(kube_server):
    token = kube_server.token("agent-k8s", ["agents"])
    async with mcp_client(kube_server.mcp_url, token, "auto") as c:
        r = await call(c, "k8s_get", {"connection": "k8s", "kind": "deploy", "name": "web", "namespace": "shop"})
    assert not r.is_error, r.structured_content
    assert_no_secret(r.content[0].text, "a Deployment")
    env = r.structured_content["object"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "DB_PASSWORD", "value": "[SECRET]"}], env


@pytest.mark.parametrize("args,code", [
    ({"name": "--server=https://evil.example.com", "namespace": "shop"}, "invalid_arguments"),
    ({"name": "../../api/v1/secrets", "namespace": "shop"}, "invalid_arguments"),
    ({"name": "a/b", "namespace": "shop"}, "invalid_arguments"),
    ({"name": "db", "namespace": "other"}, "invalid_arguments"),
    ({"name": "db", "namespace": "kube-system"}, "invalid_arguments"),
    ({"name": "db", "namespace": "shop/../kube-system"}, "invalid_arguments"),
    ({"name": "db", "namespace": "shop", "kind": "Widget"}, "denied"),
])
async def test_flag_and_path_names_and_foreign_namespaces_are_refused(kube_server, args, code):
    token = kube_server.token("agent-k8s", ["agents"])
    async with mcp_client(kube_server.mcp_url, token, "legacy") as c:
        r = await call(c, "k8s_get", {"connection": "k8s", "kind": "Secret", **args})
    assert r.is_error, r.structured_content
    assert r.structured_content["error"]["code"] == code, r.structured_content
    assert_no_secret(r.content[0].text, "an error")


async def test_token_in_no_result_log_or_audit(kube_server, kube):
    token = kube_server.token("agent-k8s", ["agents"])
    async with mcp_client(kube_server.mcp_url, token, "legacy") as c:
        # The calls most likely to echo a credential: the cluster's own errors.
        await call(c, "k8s_get", {"connection": "k8s", "kind": "Secret", "name": "nope", "namespace": "shop"})
        await call(c, "k8s_list", {"connection": "wide", "kind": "nodes"})
    log = kube_server.log()
    assert "DEBUG" in log, "the server did not log at debug, so this check proves nothing"
    for secret, what in ((kube.admin, "connection token"), (PASSWORD, "Secret value"), (B64, "Secret value (base64)")):
        assert secret not in log, f"the server log holds the {what}"
    out = kube_server.cli("audit", "export", "--config", str(kube_server.config), "--format", "jsonl")
    assert out.returncode == 0 and '"k8s_get"' in out.stdout, out.stderr
    for secret, what in ((kube.admin, "connection token"), (PASSWORD, "Secret value"), (B64, "Secret value (base64)")):
        assert secret not in out.stdout, f"the audit export holds the {what}"
