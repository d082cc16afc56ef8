{{- define "duplex.labels" -}}
app.kubernetes.io/name: duplex
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- /* An image: registry/name:tag, or the name as given when it has a tag or digest (skaffold). */ -}}
{{- define "duplex.image" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}
{{- if or (contains "@" $name) (contains ":" (last (splitList "/" $name))) -}}{{ $name }}
{{- else if $root.Values.image.registry -}}{{ printf "%s/%s:%s" $root.Values.image.registry $name $root.Values.image.tag }}
{{- else -}}{{ printf "%s:%s" $name $root.Values.image.tag }}{{- end -}}
{{- end -}}

{{- /* The image of a container running Whisper (orchestrator, LiveKit agent): its CUDA
variant when orchestrator.asr.device is cuda. */ -}}
{{- define "duplex.asrImage" -}}
{{- if eq .Values.orchestrator.asr.device "cuda" -}}{{ include "duplex.image" (list . .Values.image.orchestratorCuda) }}
{{- else -}}{{ include "duplex.image" (list . .Values.image.orchestrator) }}{{- end -}}
{{- end -}}

{{- /* Its resources, given as (list $ resources): on cuda, one GPU added to the limits. */ -}}
{{- define "duplex.asrResources" -}}
{{- $root := index . 0 -}}{{- $resources := deepCopy (index . 1) -}}
{{- if eq $root.Values.orchestrator.asr.device "cuda" -}}
{{- $limits := default (dict) $resources.limits -}}
{{- $_ := set $limits $root.Values.orchestrator.asr.gpuResource 1 -}}
{{- $_ := set $resources "limits" $limits -}}
{{- end -}}
{{- toYaml $resources -}}
{{- end -}}

{{- define "duplex.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "duplex.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}

{{- /* The worker image catalog as JSON for the operator: [{image, families, cuda}]. */ -}}
{{- define "duplex.workerImages" -}}
{{- $root := . -}}{{- $out := list -}}
{{- range $root.Values.image.workerImages -}}
{{- $image := include "duplex.image" (list $root (index $root.Values.image .key)) -}}
{{- $out = append $out (dict "image" $image "families" .families "cuda" (.cuda | default false)) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{- /* A pool's image: its own, else the first catalog image serving all its families
(one marked cuda first on device: cuda), as the operator's pick_image does. */ -}}
{{- define "duplex.poolImage" -}}
{{- $root := index . 0 -}}{{- $pool := index . 1 -}}
{{- $first := "" -}}{{- $firstCuda := "" -}}
{{- range $root.Values.image.workerImages -}}
{{- $entry := . -}}{{- $serves := true -}}
{{- range $pool.families -}}{{- if not (has . $entry.families) -}}{{- $serves = false -}}{{- end -}}{{- end -}}
{{- if $serves -}}
{{- $name := index $root.Values.image $entry.key -}}
{{- if not $first -}}{{- $first = $name -}}{{- end -}}
{{- if and $entry.cuda (not $firstCuda) -}}{{- $firstCuda = $name -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- $chosen := ternary (default $first $firstCuda) $first (eq ($pool.device | default "cpu") "cuda") -}}
{{- if $pool.image -}}{{ $pool.image }}
{{- else if $chosen -}}{{ include "duplex.image" (list $root $chosen) }}
{{- else -}}{{ fail (printf "workerPools %s: no image in image.workerImages serves families %v; set the pool's image" $pool.name $pool.families) }}
{{- end -}}
{{- end -}}

{{- define "duplex.wireSecret" -}}
{{- default (printf "%s-worker-grpc" .Release.Name) .Values.workerTraffic.existingSecret -}}
{{- end -}}

{{- /* How workers are reached, for the operator (which builds worker pods): JSON. */ -}}
{{- define "duplex.workerWire" -}}
{{- if or .Values.workerTraffic.tls .Values.workerTraffic.token -}}
{{- toJson (dict "secret" (include "duplex.wireSecret" .) "tls" .Values.workerTraffic.tls "token" .Values.workerTraffic.token) -}}
{{- end -}}
{{- end -}}

{{- /* Env of a worker gRPC client (orchestrator, operator): the mounted files. */ -}}
{{- define "duplex.wireEnv" -}}
{{- if .Values.workerTraffic.tls }}
- {name: DUPLEX_GRPC_TLS_CERT, value: /etc/duplex/grpc/tls.crt}
- {name: DUPLEX_GRPC_TLS_KEY, value: /etc/duplex/grpc/tls.key}
- {name: DUPLEX_GRPC_TLS_CA, value: /etc/duplex/grpc/ca.crt}
{{- end }}
{{- if .Values.workerTraffic.token }}
- {name: DUPLEX_GRPC_TOKEN_FILE, value: /etc/duplex/grpc/token}
{{- end }}
{{- end -}}

{{- define "duplex.wireMount" -}}
{{- if include "duplex.workerWire" . }}
volumeMounts:
  - {name: grpc-auth, mountPath: /etc/duplex/grpc, readOnly: true}
{{- end }}
{{- end -}}

{{- define "duplex.wireVolume" -}}
{{- if include "duplex.workerWire" . }}
volumes:
  - {name: grpc-auth, secret: {secretName: {{ include "duplex.wireSecret" . }}, defaultMode: 0440}}
{{- end }}
{{- end -}}

{{- define "duplex.operatorRules" -}}
- apiGroups: [duplex.dev]
  resources: [ttsworkers, voicemodels]
  verbs: [get, list, watch, patch]
- apiGroups: [duplex.dev]
  resources: [ttsworkers/status, voicemodels/status]
  verbs: [get, patch]
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [services, serviceaccounts]
  verbs: [get, list, watch, create, patch]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, list, watch, create, patch]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [get]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
