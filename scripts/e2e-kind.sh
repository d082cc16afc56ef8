#!/usr/bin/env bash
# End to end on a kind cluster: build and load the images, helm install, a CPU pool and the
# Piper VoiceModel, wait for Ready, speak through the orchestrator Service, check the audio.
# Needs Docker, kind, kubectl and helm (the versions are pinned in .github/workflows/e2e-kind.yml).
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER=${CLUSTER:-duplex-e2e}
NS=duplex
TAG=e2e

dump() {
  echo "---- failure: events, resources and logs ----"
  kubectl -n "$NS" get all,tw,vm,leases -o wide || true
  kubectl -n "$NS" get events --sort-by=.lastTimestamp || true
  kubectl -n "$NS" describe vm,tw || true
  for pod in $(kubectl -n "$NS" get pods -o name); do kubectl -n "$NS" logs "$pod" --all-containers --tail=200 || true; done
}
trap 'status=$?; [ $status -ne 0 ] && dump; kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; exit $status' EXIT

kind create cluster --name "$CLUSTER" --wait 120s
make images IMAGE_TAG="$TAG"
for image in tts-worker orchestrator operator; do kind load docker-image "duplex/$image:$TAG" --name "$CLUSTER"; done

kubectl create namespace "$NS"
kubectl -n "$NS" create secret generic duplex-api-key --from-literal=api-key=e2e-key
helm install duplex charts/duplex --namespace "$NS" --wait --timeout 5m \
  --values charts/duplex/ci/cpu-values.yaml \
  --set image.tag="$TAG" --set image.pullPolicy=Never \
  --set orchestrator.apiKey.existingSecret=duplex-api-key

kubectl -n "$NS" wait --for=jsonpath='{.status.phase}'=Ready vm/piper-en-us-joe-medium --timeout=10m
kubectl -n "$NS" get vm,tw
kubectl -n "$NS" rollout status deployment/duplex-orchestrator --timeout=5m

kubectl -n "$NS" port-forward svc/duplex-orchestrator 18080:8080 >/tmp/port-forward.log 2>&1 &
trap 'kill %1 2>/dev/null || true' RETURN
sleep 3
uv run --frozen duplex say "Hello from the kind cluster." --url ws://127.0.0.1:18080/ws --key e2e-key --out /tmp/e2e-reply.wav
uv run --frozen python - <<'PY'
import wave
with wave.open("/tmp/e2e-reply.wav") as w:
    seconds = w.getnframes() / w.getframerate()
assert seconds > 0.8, f"reply too short: {seconds:.2f} s"
print(f"e2e ok: {seconds:.2f} s of reply audio")
PY
