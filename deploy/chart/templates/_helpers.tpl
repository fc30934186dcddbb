{{/* The guard's names are fixed: one guard per cluster, and `airflow-downgrade-guard manifests` renders the same objects. */}}
{{- define "adg.name" -}}airflow-downgrade-guard{{- end -}}

{{- define "adg.selectorLabels" -}}
app.kubernetes.io/name: airflow-downgrade-guard
app.kubernetes.io/instance: airflow-downgrade-guard
{{- end -}}

{{- define "adg.podLabels" -}}
{{ include "adg.selectorLabels" . }}
app.kubernetes.io/part-of: airflow-downgrade-guard
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- with .Values.labels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "adg.labels" -}}
{{ include "adg.podLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "adg.image" -}}
{{- required "image is required: no image is published; build this repository's Dockerfile, push it, and set --set image=REGISTRY/airflow-downgrade-guard:TAG" .Values.image -}}
{{- end -}}

{{- define "adg.selfManaged" -}}{{ eq .Values.certMode "self-managed" }}{{- end -}}
