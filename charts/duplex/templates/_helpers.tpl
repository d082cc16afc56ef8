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
