"""The Helm chart, rendered by the real Helm SDK (helm-python-sdk): lint, values, RBAC, CRDs."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from helm_python import chart as helm
from helm_python.errors import HelmValuesError

from duplex_operator import NoWorkerImage, pick_image, worker_images
from tests.support.chart import CHART, SECRET, find, render
from tests.support.crd import ROOT, validate


def test_lint_has_no_errors() -> None:
    assert helm.lint(str(CHART))["errors"] == []


def test_an_api_key_secret_is_required_unless_dev() -> None:
    with pytest.raises(Exception, match=r"orchestrator.apiKey.existingSecret is required"):
        render({})
    dev = find(render({"orchestrator": {"dev": True}}), "Deployment", "duplex-orchestrator")
    assert "--dev" in dev["spec"]["template"]["spec"]["containers"][0]["args"]


def test_default_render() -> None:
    docs = render(SECRET)
    orchestrator = find(docs, "Deployment", "duplex-orchestrator")["spec"]["template"]["spec"]
    container = orchestrator["containers"][0]
    assert "--registry=kubernetes" in container["args"]
    assert "--dev" not in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["DUPLEX_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "duplex-api-key"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert "tcpSocket" in container["livenessProbe"]
    assert orchestrator["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    operator = find(docs, "Deployment", "duplex-operator")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert "--standalone" not in operator.get("args", [])  # leader election even for one
    assert operator["livenessProbe"]["httpGet"]["port"] == "health"
    assert not [d for d in docs if d["kind"] in ("TTSWorker", "VoiceModel", "ServiceMonitor")]


def rules(doc: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in doc["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_rbac_is_least_privilege_per_component() -> None:
    docs = render(SECRET)
    orchestrator = rules(find(docs, "Role", "duplex-orchestrator"))
    assert orchestrator == {("coordination.k8s.io", "leases", v) for v in ("get", "list", "watch")}
    # Namespaced by default: a Role in the release namespace, no cluster-wide writes.
    operator = rules(find(docs, "Role", "duplex-operator"))
    assert not [
        d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "duplex-operator"
    ]
    cluster = rules(find(docs, "ClusterRole", "duplex-operator-crds"))
    assert {verb for _, _, verb in cluster} == {"get", "list", "watch"}
    assert ("duplex.dev", "voicemodels/status", "patch") in operator
    assert ("apps", "statefulsets", "create") in operator
    assert not any(resource == "secrets" for _, resource, _ in operator)
    assert not any(verb in ("*", "escalate", "bind", "impersonate") for _, _, verb in operator)
    assert not any(resource == "*" for _, resource, _ in operator)
    # The operator holds every permission it grants to worker pods (no RBAC escalation).
    from duplex_operator import PoolSpec, worker_role

    pool = PoolSpec(name="cpu", namespace="voice", image="x", families=["piper"])
    granted = rules(worker_role(pool)[0])
    assert granted <= operator


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_worker_pools_and_voice_models_render_valid_resources(device: str) -> None:
    pool: dict[str, Any] = {
        "name": device,
        "families": ["piper"],
        "device": device,
        "replicas": 2,
        "modelManager": {"defaultModel": "piper-en-us-joe-medium", "ttlSeconds": 60},
    }
    if device == "cuda":
        pool |= {
            "gpu": {"count": 1},
            "nodeSelector": {"gpu": "true"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
        }
    values = {
        **SECRET,
        "workerPools": [pool],
        "voiceModels": [
            yaml.safe_load(
                (ROOT / "voicepacks/piper/en-us-joe-medium/voicemodel.yaml").read_text()
            )["spec"]
            | {"name": "piper-en-us-joe-medium"}
        ],
    }
    docs = render(values)
    worker = find(docs, "TTSWorker", device)
    # CUDA pools run the worker's torch variant.
    image = "duplex/tts-worker-torch:0.1.0" if device == "cuda" else "duplex/tts-worker:0.1.0"
    assert worker["spec"]["image"] == image
    assert worker["spec"]["device"] == device
    assert validate(worker) == []
    assert validate(find(docs, "VoiceModel", "piper-en-us-joe-medium")) == []
    if device == "cuda":
        assert worker["spec"]["gpu"] == {"count": 1}
    else:
        assert "gpu" not in worker["spec"]


def test_an_autoscaled_pool_leaves_replicas_to_the_operator() -> None:
    autoscaling = {"minReplicas": 1, "maxReplicas": 4, "targetActiveSessions": 8}
    pool = {"name": "cpu", "families": ["piper"], "replicas": 3, "autoscaling": autoscaling}
    worker = find(render({**SECRET, "workerPools": [pool]}), "TTSWorker", "cpu")
    assert worker["spec"]["autoscaling"] == autoscaling
    assert "replicas" not in worker["spec"]  # else every helm upgrade would reset it
    assert validate(worker) == []
    fixed_pool = {k: v for k, v in pool.items() if k != "autoscaling"}
    fixed = find(render({**SECRET, "workerPools": [fixed_pool]}), "TTSWorker", "cpu")
    assert fixed["spec"]["replicas"] == 3


def test_two_operator_replicas_elect_a_leader_and_service_monitor_is_optional() -> None:
    docs = render({**SECRET, "operator": {"replicas": 2}, "serviceMonitor": {"enabled": True}})
    operator = find(docs, "Deployment", "duplex-operator")
    assert operator["spec"]["replicas"] == 2
    container = operator["spec"]["template"]["spec"]["containers"][0]
    assert "--standalone" not in container.get("args", [])
    # Each replica names itself in the leader Lease, which lives in its own namespace.
    env = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in container["env"]
        if "valueFrom" in e
    }
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    assert container["args"] == ["--namespace=voice"]
    granted = rules(find(docs, "Role", "duplex-operator"))
    assert {("coordination.k8s.io", "leases", v) for v in ("get", "create", "patch")} <= granted
    assert not any(group == "kopf.dev" for group, _, _ in granted)
    assert find(docs, "ServiceMonitor", "duplex")["spec"]["endpoints"][0]["path"] == "/metrics"


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"workerPools": [{"name": "Bad_Name", "families": ["piper"]}]}, "/workerPools/0/name"),
        (
            {"workerPools": [{"name": "cpu", "families": ["piper"], "device": "tpu"}]},
            "/workerPools/0/device",
        ),
        ({"operator": {"replicas": 9}}, "/operator/replicas"),
        (
            {"orchestrator": {"service": {"port": 0}, "apiKey": {"existingSecret": "k"}}},
            "/orchestrator/service/port",
        ),
        (
            {"orchestrator": {"llm": {"url": "llm:8000/v1"}, "apiKey": {"existingSecret": "k"}}},
            "/orchestrator/llm/url",
        ),
        (
            {"orchestrator": {"asr": {"workers": -1}, "apiKey": {"existingSecret": "k"}}},
            "/orchestrator/asr/workers",
        ),
        (
            {"orchestrator": {"asr": {"device": "tpu"}, "apiKey": {"existingSecret": "k"}}},
            "/orchestrator/asr/device",
        ),
    ],
)
def test_values_schema_rejects_bad_values(values: dict[str, Any], where: str) -> None:
    with pytest.raises(HelmValuesError) as err:
        render({**SECRET, **values})
    assert "don't meet the specifications of the schema" in str(err.value)
    assert f"at '{where}'" in str(err.value)


def test_chart_crds_are_identical_to_the_source_of_truth() -> None:
    for source in (ROOT / "crds").glob("*.yaml"):
        copy = CHART / "crds" / source.name
        assert copy.read_text() == source.read_text(), (
            f"{copy} drifted from {source}: run `make crds`"
        )
    assert {p.name for p in (CHART / "crds").glob("*.yaml")} == {
        p.name for p in (ROOT / "crds").glob("*.yaml")
    }


def test_images_built_elsewhere_pass_through_as_given() -> None:
    """skaffold sets each image to its fully qualified reference; the chart adds no tag."""
    built = "localhost:5000/duplex/operator:abc123@sha256:" + "0" * 64
    docs = render(
        {
            **SECRET,
            "image": {"operator": built, "orchestrator": "duplex/orchestrator:dev"},
            "workerPools": [{"name": "cpu", "families": ["piper"]}],
        }
    )
    operator = find(docs, "Deployment", "duplex-operator")["spec"]["template"]["spec"]
    assert operator["containers"][0]["image"] == built
    orchestrator = find(docs, "Deployment", "duplex-orchestrator")["spec"]["template"]["spec"]
    assert orchestrator["containers"][0]["image"] == "duplex/orchestrator:dev"
    assert find(docs, "TTSWorker", "cpu")["spec"]["image"] == "duplex/tts-worker:0.1.0"


def test_skaffold_sets_every_image_the_chart_uses() -> None:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    built = {a["image"] for a in config["build"]["artifacts"]}
    release = config["manifests"]["helm"]["releases"][0]["setValueTemplates"]
    gpu = next(p for p in config["profiles"] if p["name"] == "gpu")["patches"]
    built |= {p["value"]["image"] for p in gpu if p["path"] == "/build/artifacts/-"}
    values = {k: v for k, v in release.items() if k.startswith("image.")}
    values |= {p["path"].rsplit("/", 1)[1]: p["value"] for p in gpu if "image." in p["path"]}
    chart = yaml.safe_load((CHART / "values.yaml").read_text())["image"]
    for key in ("operator", "orchestrator", "worker", "workerTorch", "workerCosyvoice"):
        name = chart[key]
        assert name in built, name
        expected = "{{.IMAGE_FULLY_QUALIFIED_" + name.replace("/", "_").replace("-", "_") + "}}"
        assert values[f"image.{key}"] == expected


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_skaffold_and_kind_values_render_valid_pools_and_voices(profile: str) -> None:
    values = yaml.safe_load((CHART / "ci" / f"{profile}-values.yaml").read_text())
    values.setdefault("orchestrator", {})["apiKey"] = {"existingSecret": "k"}
    docs = render(values)
    custom = [d for d in docs if d["kind"] in ("TTSWorker", "VoiceModel")]
    assert {d["kind"] for d in custom} == {"TTSWorker", "VoiceModel"}
    assert all(validate(d) == [] for d in custom), [validate(d) for d in custom]
    gpu_pools = [d for d in custom if d["kind"] == "TTSWorker" and d["spec"]["device"] == "cuda"]
    assert bool(gpu_pools) is (profile == "gpu")


@pytest.mark.parametrize(
    ("families", "device", "image"),
    [
        (["piper"], "cpu", "duplex/tts-worker:0.1.0"),
        (["piper", "kokoro"], "cpu", "duplex/tts-worker:0.1.0"),
        (["kokoro"], "cuda", "duplex/tts-worker-torch:0.1.0"),
        (["mock"], "cpu", "duplex/tts-worker:0.1.0"),
        (["cosyvoice"], "cuda", "duplex/tts-worker-cosyvoice:0.1.0"),
    ],
)
def test_pools_get_the_image_serving_their_families_as_the_operator_would(
    families: list[str], device: str, image: str
) -> None:
    pool = {"name": "p", "families": families, "device": device}
    docs = render({**SECRET, "workerPools": [pool]})
    assert find(docs, "TTSWorker", "p")["spec"]["image"] == image
    # The operator gets the same catalog and, for a pool without an image, picks the same.
    operator = find(docs, "Deployment", "duplex-operator")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in operator["containers"][0]["env"]}
    assert pick_image(families, device, worker_images(env["DUPLEX_WORKER_IMAGES"])) == image


def test_a_pool_no_image_serves_is_refused_with_the_families_named() -> None:
    with pytest.raises(Exception, match=r"no image in image\.workerImages serves families"):
        render({**SECRET, "workerPools": [{"name": "p", "families": ["parler"]}]})
    catalog = worker_images('[{"image": "w:1", "families": ["piper"]}]')
    with pytest.raises(NoWorkerImage, match=r"families \['parler'\].*w:1: piper"):
        pick_image(["parler"], "cpu", catalog)
    explicit = {"name": "p", "families": ["parler"], "image": "mine/parler:1"}
    assert (
        find(render({**SECRET, "workerPools": [explicit]}), "TTSWorker", "p")["spec"]["image"]
        == "mine/parler:1"
    )


def test_operator_watch_scope_is_opt_in() -> None:
    docs = render({**SECRET, "operator": {"watchNamespaces": ["voice", "lab"]}})
    roles = [
        d["metadata"]["namespace"]
        for d in docs
        if d["kind"] == "Role" and d["metadata"]["name"] == "duplex-operator"
    ]
    assert sorted(roles) == ["lab", "voice"]
    operator = find(docs, "Deployment", "duplex-operator")["spec"]["template"]["spec"]
    assert operator["containers"][0]["args"] == ["--namespace=voice", "--namespace=lab"]
    docs = render({**SECRET, "operator": {"clusterWide": True}})
    assert find(docs, "ClusterRoleBinding", "duplex-operator")
    operator = find(docs, "Deployment", "duplex-operator")["spec"]["template"]["spec"]
    assert operator["containers"][0]["args"] == ["--all-namespaces"]


def test_worker_traffic_is_mutual_tls_with_a_token_by_default() -> None:
    import base64
    import json

    docs = render(SECRET)
    secret = find(docs, "Secret", "duplex-worker-grpc")
    assert set(secret["data"]) == {"ca.crt", "tls.crt", "tls.key", "token"}
    assert base64.b64decode(secret["data"]["tls.crt"]).startswith(b"-----BEGIN CERTIFICATE")
    for name in ("duplex-operator", "duplex-orchestrator"):
        spec = find(docs, "Deployment", name)["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
        assert env["DUPLEX_GRPC_TLS_CERT"] == "/etc/duplex/grpc/tls.crt"
        assert env["DUPLEX_GRPC_TOKEN_FILE"] == "/etc/duplex/grpc/token"
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["grpc-auth"]["secret"]["secretName"] == "duplex-worker-grpc"
    operator = find(docs, "Deployment", "duplex-operator")["spec"]["template"]["spec"]
    wire = {e["name"]: e.get("value") for e in operator["containers"][0]["env"]}[
        "DUPLEX_WORKER_WIRE"
    ]
    assert json.loads(wire) == {"secret": "duplex-worker-grpc", "tls": True, "token": True}
    # Off on request (and then nothing is mounted).
    plain = render({**SECRET, "workerTraffic": {"tls": False, "token": False}})
    assert not [d for d in plain if d["kind"] == "Secret"]
    spec = find(plain, "Deployment", "duplex-orchestrator")["spec"]["template"]["spec"]
    assert [v["name"] for v in spec["volumes"]] == ["tmp"]


def test_network_policies_admit_worker_grpc_from_the_orchestrator_and_operator_only() -> None:
    docs = render(SECRET)
    policy = find(docs, "NetworkPolicy", "duplex-tts-workers")
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "duplex",
        "app.kubernetes.io/component": "tts-worker",
    }
    grpc_rule = next(r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == 7001)
    components = sorted(
        p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in grpc_rule["from"]
    )
    assert components == ["operator", "orchestrator"]
    metrics_rule = next(r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == 9101)
    assert "namespaceSelector" in metrics_rule["from"][0]


def test_webrtc_ice_servers_and_the_turn_secret_reach_the_orchestrator() -> None:
    values: dict[str, Any] = {
        **SECRET,
        "orchestrator": {
            **SECRET["orchestrator"],
            "webrtc": {
                "iceServers": ["stun:stun.example.com:3478", "turn:turn.example.com:3478"],
                "turnUsername": "duplex",
                "turnCredentialSecret": "duplex-turn",
                "hosts": ["10.0.0.7"],
                "keepaliveMs": 8000,
            },
        },
    }
    container = find(render(values), "Deployment", "duplex-orchestrator")["spec"]["template"][
        "spec"
    ]["containers"][0]
    args = container["args"]
    assert "--ice-server=stun:stun.example.com:3478" in args
    assert "--ice-server=turn:turn.example.com:3478" in args
    assert "--turn-username=duplex" in args
    assert "--rtc-host=10.0.0.7" in args
    assert "--rtc-keepalive-ms=8000" in args
    env = {e["name"]: e for e in container["env"]}
    assert env["DUPLEX_TURN_CREDENTIAL"]["valueFrom"]["secretKeyRef"] == {
        "name": "duplex-turn",
        "key": "credential",
    }
    bad = {**values, "orchestrator": {**values["orchestrator"], "webrtc": {"iceServers": ["x"]}}}
    with pytest.raises(Exception, match="iceServers"):
        render(bad)


def test_the_livekit_agent_renders_with_its_secret_and_may_reach_the_workers() -> None:
    assert not [d for d in render(SECRET) if "livekit" in d["metadata"]["name"]]  # opt-in
    values: dict[str, Any] = {
        **SECRET,
        "livekitAgent": {
            "enabled": True,
            "url": "wss://demo.livekit.cloud",
            "credentialsSecret": "livekit",
            "agentName": "duplex",
        },
    }
    docs = render(values)
    spec = find(docs, "Deployment", "duplex-livekit-agent")["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert "--transport=livekit" in container["args"]
    assert "--livekit-agent-name=duplex" in container["args"]
    assert "--registry=kubernetes" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["LIVEKIT_URL"]["value"] == "wss://demo.livekit.cloud"
    for name, key in (("LIVEKIT_API_KEY", "api-key"), ("LIVEKIT_API_SECRET", "api-secret")):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "livekit", "key": key}
    assert "DUPLEX_GRPC_TOKEN_FILE" in env  # worker gRPC with the same token and TLS
    assert spec["serviceAccountName"] == "duplex-orchestrator"  # reads the worker Leases
    assert container["readinessProbe"]["httpGet"] == {"path": "/", "port": "health"}
    assert spec["terminationGracePeriodSeconds"] == 600
    policy = find(docs, "NetworkPolicy", "duplex-tts-workers")
    grpc_rule = next(r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == 7001)
    components = {
        p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in grpc_rule["from"]
    }
    assert "livekit-agent" in components
    missing = {**values, "livekitAgent": {"enabled": True, "url": "wss://demo.livekit.cloud"}}
    with pytest.raises(Exception, match="credentialsSecret is required"):
        render(missing)
    bad = {**values, "livekitAgent": {**values["livekitAgent"], "url": "demo.livekit.cloud"}}
    with pytest.raises(Exception, match="url"):
        render(bad)


def test_whisper_workers_are_the_pods_cores_unless_set_for_both_its_processes() -> None:
    """0 leaves the count to the process (the cores its CPU limit grants); a number is
    passed to the orchestrator and to the LiveKit agent, which both run Whisper."""
    values: dict[str, Any] = {
        **SECRET,
        "livekitAgent": {"enabled": True, "url": "wss://x.livekit.cloud", "credentialsSecret": "l"},
    }
    for workers, flag in ((0, None), (3, "--asr-workers=3")):
        values["orchestrator"] = {**SECRET["orchestrator"], "asr": {"workers": workers}}
        docs = render(values)
        for name in ("duplex-orchestrator", "duplex-livekit-agent"):
            args = find(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0][
                "args"
            ]
            asr = [a for a in args if a.startswith("--asr-workers")]
            assert asr == ([flag] if flag else []), name


def test_whisper_on_a_gpu_takes_the_cuda_image_and_one_gpu_beside_its_limits() -> None:
    values: dict[str, Any] = {
        **SECRET,
        "livekitAgent": {"enabled": True, "url": "wss://x.livekit.cloud", "credentialsSecret": "l"},
    }
    for device in ("cpu", "cuda"):
        values["orchestrator"] = {**SECRET["orchestrator"], "asr": {"device": device}}
        docs = render(values)
        for name in ("duplex-orchestrator", "duplex-livekit-agent"):
            pod = find(docs, "Deployment", name)["spec"]["template"]["spec"]
            container = pod["containers"][0]
            limits = container["resources"]["limits"]
            assert limits["memory"]  # the chart's own limits stay
            if device == "cuda":
                assert container["image"] == "duplex/orchestrator-cuda:0.1.0", name
                assert "--asr-device=cuda" in container["args"]
                assert limits["nvidia.com/gpu"] == 1
                assert pod["tolerations"] == [
                    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                ]
            else:
                assert container["image"] == "duplex/orchestrator:0.1.0", name
                assert not [a for a in container["args"] if a.startswith("--asr-device")]
                assert "nvidia.com/gpu" not in limits
                assert "tolerations" not in pod


def test_the_llms_instructions_and_wait_reach_both_processes_that_answer() -> None:
    """A system message of several lines is one argument; unset, each process keeps
    its own default (no flag)."""
    agent = {"enabled": True, "url": "wss://x.livekit.cloud", "credentialsSecret": "l"}
    llm = {"url": "http://llm:8000/v1", "instructions": 'Take "orders".\nBe brief.', "timeoutS": 90}
    for given, wanted in (
        ({}, []),
        (llm, ['--llm-instructions=Take "orders".\nBe brief.', "--llm-timeout-s=90"]),
        ({"historyChars": 0}, ["--llm-history-chars=0"]),  # 0 is a value: each turn alone
        ({"historyChars": 8000}, ["--llm-history-chars=8000"]),
    ):
        values = {**SECRET, "orchestrator": {**SECRET["orchestrator"], "llm": given}}
        docs = render({**values, "livekitAgent": agent})
        for name in ("duplex-orchestrator", "duplex-livekit-agent"):
            args = find(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0][
                "args"
            ]
            flags = [a for a in args if a.startswith(("--llm-i", "--llm-t", "--llm-h"))]
            assert flags == wanted, name
