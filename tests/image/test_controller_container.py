"""The controller image as the chart runs it, against the real API server of the test cluster.

`helm install` of the chart (its image set to the one under test); then the container the
chart's Deployment describes is run with podman the way a kubelet would run the pod: the
Deployment's own args and env (POD_NAME and POD_NAMESPACE from the downward API, $(POD_NAME)
expanded), the chart's ConfigMap mounted read-only at /etc/autoscaler, a token of the chart's
ServiceAccount with the cluster's CA (the namespace's kube-root-ca.crt) and namespace mounted
at /var/run/secrets/kubernetes.io/serviceaccount, KUBERNETES_SERVICE_HOST/PORT set, host
networking (the API server listens on 127.0.0.1), the chart's securityContext (read-only
root, /tmp its emptyDir, no capabilities, the image's non-root user). No kubeconfig: the
controller finds the cluster exactly as in a pod.

It takes the chart's Lease, scales a Deployment from an AutoscalingPool, answers /healthz,
/readyz and /metrics, and on SIGTERM releases the Lease and exits 0 within the Deployment's
terminationGracePeriodSeconds. The time from `helm install` to the container holding the
Lease is printed (and written to AUTOSCALER_IMAGE_FIGURES, a JSON file, when that is set:
bench/image.py).
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k
from kubernetes.client.exceptions import ApiException

from tests.cluster.session import KubeCluster
from tests.image.engine import ULIMITS, hardened, podman
from tests.image.test_image import exit_code, get, logs, status
from tests.kube.test_chart import CHART, ok, run_tool
from tests.kube.test_crd import install_crd
from tests.kube.test_process import autoscaling_pool, deployment, pool_status, replicas
from tests.servers.processes import free_port

pytestmark = pytest.mark.kube

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def split_ref(ref: str) -> tuple[str, str]:
    """`repo:tag` -> (repo, tag); a ref without a tag is :latest."""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, "latest"


def wait_for(what: str, check: Callable[[], Any], timeout: float, name: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:g}s waiting for {what} (last: {last!r}); "
                f"container log:\n{logs(name)[-4000:]}")  # fmt: skip


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in args ($$ escapes; unknown names stay as written)."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
                  value)  # fmt: skip


def pod_env(container: Any, pod: str, namespace: str) -> dict[str, str]:
    """The container's env as the kubelet sets it (values, and the downward API's name and
    namespace; nothing else is used by the chart)."""
    env: dict[str, str] = {}
    for var in container.env or []:
        if var.value is not None:
            env[var.name] = var.value
        elif var.value_from and var.value_from.field_ref:
            path = var.value_from.field_ref.field_path
            env[var.name] = {"metadata.name": pod, "metadata.namespace": namespace}[path]
        else:
            raise AssertionError(f"the chart sets {var.name} from something this test lacks")
    return env


def lease_holder(kube_api: Any, name: str, namespace: str) -> str | None:
    try:
        lease = k.CoordinationV1Api(kube_api).read_namespaced_lease(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return str((lease.spec and lease.spec.holder_identity) or "")


def readable_folder(path: Path, files: dict[str, str]) -> Path:
    """A folder uid 65532 can read (mode 0755, files 0644), as a kubelet's volumes are."""
    path.mkdir(mode=0o755)
    path.chmod(0o755)
    for name, text in files.items():
        (path / name).write_text(text)
        (path / name).chmod(0o644)
    return path


def test_the_controller_image_runs_as_the_charts_pod_takes_the_lease_scales_and_stops_cleanly(
    kube_cluster: KubeCluster,
    kube_api: Any,
    core_v1: Any,
    apps_v1: Any,
    kube_namespace: str,
    image: str,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    install_crd(kube_api)  # the chart's crds/ hold the same CRD; helm skips an existing one
    health_port, metrics_port = free_port(), free_port()
    repository, tag = split_ref(image)
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "installationId": "default",  # the owner label tests.kube.test_process puts on
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "health": {"port": health_port},
        "metrics": {"port": metrics_port},
        "interval": 1,
    }))  # fmt: skip
    env = kube_cluster.tool_env()
    helm_home = tmp_path / "helm"
    name = f"ea-controller-{uuid.uuid4().hex[:8]}"
    installed = time.monotonic()
    ok(run_tool("helm", "install", "img", str(CHART), "--namespace", ns,
                "--values", str(values), home=helm_home, env=env))  # fmt: skip
    try:
        # What the chart's pod would get: its container spec, config, token, CA, namespace.
        spec = apps_v1.read_namespaced_deployment("img-autoscaler", ns).spec.template.spec
        [container] = spec.containers
        assert container.image == image, "the chart runs the image under test"
        grace = int(spec.termination_grace_period_seconds)
        pod = f"img-autoscaler-{uuid.uuid4().hex[:5]}"
        pod_vars = pod_env(container, pod, ns)
        args = [expand(a, pod_vars) for a in container.args]
        lease = next(a.split("=", 1)[1] for a in args if a.startswith("--lease-name="))
        [config_volume] = [v for v in spec.volumes if v.name == "config"]
        config_map = core_v1.read_namespaced_config_map(config_volume.config_map.name, ns)
        config_dir = readable_folder(tmp_path / "config", dict(config_map.data))

        def root_ca() -> str:
            try:
                return str(core_v1.read_namespaced_config_map("kube-root-ca.crt", ns)
                           .data["ca.crt"])  # fmt: skip
            except ApiException as exc:
                if exc.status == 404:
                    return ""
                raise

        ca = wait_for("the namespace's kube-root-ca.crt", root_ca, 30, name)
        token = core_v1.create_namespaced_service_account_token(
            spec.service_account_name, ns, {"spec": {"expirationSeconds": 3600}}
        ).status.token
        sa_dir = readable_folder(tmp_path / "serviceaccount",
                                 {"token": token, "ca.crt": ca, "namespace": ns})  # fmt: skip
        api = urllib.parse.urlsplit(kube_api.configuration.host)
        assert api.hostname in ("127.0.0.1", "localhost"), api  # reachable with host networking
        mounts = {m.mount_path for m in container.volume_mounts}
        assert mounts == {"/tmp", "/etc/autoscaler"}, "this test mounts what the chart mounts"

        env_options = [f"--env={n}={v}" for n, v in pod_vars.items()]
        env_options += [f"--env=KUBERNETES_SERVICE_HOST={api.hostname}",
                        f"--env=KUBERNETES_SERVICE_PORT={api.port or 443}"]  # fmt: skip
        started = podman(
            "run", "--detach", "--name", name, "--network=host", *ULIMITS, *hardened(),
            "--stop-timeout", str(grace), *env_options,
            "--volume", f"{config_dir}:/etc/autoscaler:ro",
            "--volume", f"{sa_dir}:{SA_DIR}:ro",
            image, *args,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr

        # The Lease, from helm install on.
        wait_for(f"{pod} to hold the Lease {lease}",
                 lambda: lease_holder(kube_api, lease, ns) == pod, 90, name)  # fmt: skip
        to_lease = time.monotonic() - installed
        report(to_lease)

        # An AutoscalingPool with a static signal (25 at 10 per replica) scales a Deployment.
        deployment(apps_v1, ns, "web")
        autoscaling_pool(kube_api, ns, "chat", "web")
        wait_for("web scaled to 3", lambda: replicas(apps_v1, ns, "web") == 3, 60, name)
        wait_for("the pool's status", lambda: pool_status(kube_api, ns, "chat").get("desired") == 3,
                 30, name)  # fmt: skip

        # The probes and the metrics, on the ports the chart's probes and Service use.
        assert status(f"http://127.0.0.1:{health_port}/healthz") == 200
        assert get(f"http://127.0.0.1:{health_port}/readyz") == "ok\n"
        metrics = get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert "autoscaler_leader 1.0" in metrics, metrics[-2000:]
        assert 'autoscaler_pool_desired_replicas{pool="chat"} 3.0' in metrics

        # Non-root, read-only: from podman's view and from inside the running container.
        [info] = json.loads(podman("container", "inspect", name, check=True).stdout)
        assert info["HostConfig"]["ReadonlyRootfs"] is True
        probe = podman("exec", name, "python3", "-c", (
            "import os, json\n"
            "def w(p):\n"
            "    try:\n"
            "        open(os.path.join(p, '.probe'), 'w').close(); return True\n"
            "    except OSError:\n"
            "        return False\n"
            "status = dict(l.split(':', 1) for l in open('/proc/1/status'))\n"
            "print(json.dumps({'uid': status['Uid'].split(), 'cmd': open('/proc/1/cmdline')"
            ".read().split('\\0')[:3], 'w': {p: w(p) for p in ('/', '/opt/venv', '/tmp')}}))"
        ), check=True)  # fmt: skip
        inside = json.loads(probe.stdout)
        assert set(inside["uid"]) == {"65532"}, inside  # real, effective, saved, fs
        assert inside["cmd"][1].endswith("/autoscaler") and inside["cmd"][2] == "run", inside
        assert inside["w"] == {"/": False, "/opt/venv": False, "/tmp": True}

        # SIGTERM (what the kubelet sends), within the grace period: Lease released, exit 0.
        t = time.monotonic()
        podman("stop", "--time", str(grace), name, check=True, timeout=grace + 30)
        stopped_in = time.monotonic() - t
        text = logs(name)
        assert exit_code(name) == 0, text[-4000:]
        assert stopped_in < grace, f"stopping took {stopped_in:.1f}s (grace {grace}s)"
        assert lease_holder(kube_api, lease, ns) == "", "the Lease is released on SIGTERM"
        assert "Traceback" not in text, text[-4000:]
        assert "Forbidden" not in text, f"the chart's RBAC refused a call:\n{text[-4000:]}"
        print(f"\n[image] helm install -> Lease held: {to_lease:.1f}s; "
              f"SIGTERM -> exit 0: {stopped_in:.1f}s (grace {grace}s)")
    finally:
        podman("rm", "--force", name)
        ok(run_tool("helm", "uninstall", "img", "--namespace", ns, home=helm_home, env=env))


def report(to_lease: float) -> None:
    """Record the figure for bench/image.py (AUTOSCALER_IMAGE_FIGURES names a JSON file)."""
    path = os.environ.get("AUTOSCALER_IMAGE_FIGURES", "").strip()
    if path:
        Path(path).write_text(json.dumps({"helm_install_to_lease_s": round(to_lease, 2)}))
