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

{{/* The activator (activator.enabled; docs/activator.md). Its names keep their suffix
whole: the base is cut first, so a long release name cannot make two objects collide. */}}
{{- define "autoscaler.activator.fullname" -}}
{{- printf "%s-activator" (include "autoscaler.fullname" . | trunc 53 | trimSuffix "-") }}
{{- end }}

{{/* The headless Service of the admin port: one address per activator replica. */}}
{{- define "autoscaler.activator.adminServiceName" -}}
{{- printf "%s-activator-admin" (include "autoscaler.fullname" . | trunc 47 | trimSuffix "-") }}
{{- end }}

{{/* Not the controller's: its Deployment, Services, PDB and ServiceMonitor must never
select activator pods (nor the activator's select the controller's). */}}
{{- define "autoscaler.activator.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-activator" (include "autoscaler.name" . | trunc 53 | trimSuffix "-") }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "autoscaler.activator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "autoscaler.activator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: activator
app.kubernetes.io/part-of: elastic-autoscaler
{{- end }}

{{- define "autoscaler.activator.serviceAccountName" -}}
{{- if .Values.activator.serviceAccount.create }}
{{- default (include "autoscaler.activator.fullname" .) .Values.activator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.activator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The names of config.file's pools that have an `activator:` section, as a JSON list. */}}
{{- define "autoscaler.activator.frontedPools" -}}
{{- $fronted := list }}
{{- range (get .Values.config.file "pools" | default list) }}
{{- if and (kindIs "map" .) (get . "activator") }}
{{- $fronted = append $fronted (get . "name") }}
{{- end }}
{{- end }}
{{- toJson $fronted }}
{{- end }}

{{/*
The installation id: installationId, else <release namespace>-<release name> cut to a label
value's 63 characters (never a shared "default": two installations would own each other's).
*/}}
{{- define "autoscaler.installationId" -}}
{{- .Values.installationId | default (printf "%s-%s" .Release.Namespace .Release.Name) | trunc 63 | trimSuffix "-" | trimSuffix "." | trimSuffix "_" -}}
{{- end }}
