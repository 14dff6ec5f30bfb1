"""RBAC is enforced by the real API server: a ServiceAccount token from the TokenRequest API is
refused (403) until a Role and RoleBinding grant the permission, and then accepted (200)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k
from kubernetes.client.exceptions import ApiException

from tests.cluster.wait import wait_for

pytestmark = pytest.mark.kube


def client_with_token(admin: Any, token: str) -> Any:
    """An ApiClient for the same server and CA as admin, authenticating with a bearer token."""
    cfg = k.Configuration()
    cfg.host = admin.configuration.host
    cfg.ssl_ca_cert = admin.configuration.ssl_ca_cert
    cfg.verify_ssl = admin.configuration.verify_ssl
    cfg.api_key = {"authorization": token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    return k.ApiClient(cfg)


def status_of(call: Any) -> int:
    try:
        call()
        return 200
    except ApiException as e:
        return int(e.status)


def test_a_service_account_token_gets_403_without_a_role_and_200_once_a_role_binding_grants_it(
    kube_api: Any, core_v1: Any, rbac_v1: Any, kube_namespace: str
) -> None:
    ns = kube_namespace
    core_v1.create_namespaced_service_account(ns, {"metadata": {"name": "reader"}})
    token = core_v1.create_namespaced_service_account_token(
        "reader", ns, {"spec": {"expirationSeconds": 600}}
    ).status.token
    assert token

    with client_with_token(kube_api, token) as as_reader:
        reader = k.CoreV1Api(as_reader)

        def list_pods() -> Any:
            return reader.list_namespaced_pod(ns)

        with pytest.raises(ApiException) as refused:
            list_pods()
        assert refused.value.status == 403
        assert f"system:serviceaccount:{ns}:reader" in str(refused.value.body)

        rbac_v1.create_namespaced_role(
            ns,
            {
                "metadata": {"name": "pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
            },
        )
        rbac_v1.create_namespaced_role_binding(
            ns,
            {
                "metadata": {"name": "reader-reads-pods"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "pod-reader",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
            },
        )
        wait_for(
            lambda: status_of(list_pods) == 200,
            timeout=15,
            what="the RoleBinding to take effect (list pods -> 200)",
            describe=lambda: f"status {status_of(list_pods)}",
        )
        # The grant is exactly what the Role says: secrets and other namespaces stay closed.
        assert status_of(lambda: reader.list_namespaced_secret(ns)) == 403
        assert status_of(lambda: reader.list_namespaced_pod("kube-system")) == 403
