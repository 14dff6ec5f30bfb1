{{/* The chart's name, trimmed to the 63 characters a label value allows. */}}
{{- define "autoscaler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the prefix of every object this chart creates. */}}
{{- define "autoscaler.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "autoscaler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "autoscaler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "autoscaler.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "autoscaler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: elastic-autoscaler
{{- end }}

{{- define "autoscaler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "autoscaler.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The namespaces the controller watches and is granted: watchNamespaces, else its own. */}}
{{- define "autoscaler.watchNamespaces" -}}
{{- if .Values.rbac.watchNamespaces }}
{{- toJson (uniq .Values.rbac.watchNamespaces) }}
{{- else }}
{{- toJson (list .Release.Namespace) }}
{{- end }}
{{- end }}

{{- define "autoscaler.leaseName" -}}
{{- default (include "autoscaler.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "autoscaler.configMapName" -}}
{{- default (printf "%s-config" (include "autoscaler.fullname" .)) .Values.config.existingConfigMap }}
{{- end }}
