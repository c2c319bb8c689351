{{- define "roster.labels" -}}
app.kubernetes.io/name: roster
app.kubernetes.io/part-of: roster
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "roster.selector" -}}
app.kubernetes.io/name: roster
app.kubernetes.io/component: manager
{{- end -}}

{{- define "roster.embedded" -}}
{{- $embedded := false -}}
{{- range $name, $spec := .Values.stores -}}
{{- if hasKey $spec "embedded" -}}{{- $embedded = true -}}{{- end -}}
{{- end -}}
{{- $embedded -}}
{{- end -}}
