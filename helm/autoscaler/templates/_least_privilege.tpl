{{/* Helpers of rbac.yaml and admission-policy.yaml: what the controller's pools are, as far
as the chart can know them (config.file; AutoscalingPool objects come and go after install). */}}

{{/* The prefix of the controller's labels: installation.tag_prefix of config.file, else the
controller's default. */}}
{{- define "autoscaler.tagPrefix" -}}
{{- $installation := get .Values.config.file "installation" | default dict }}
{{- get $installation "tag_prefix" | default "elastic-autoscaler.io" | trimSuffix "/" }}
{{- end }}

{{/* The label marking a workload or Job as this installation's: <tag_prefix>/owner. */}}
{{- define "autoscaler.ownerLabel" -}}
{{- printf "%s/owner" (include "autoscaler.tagPrefix" .) }}
{{- end }}

{{/* The label naming the pool of a Job the controller creates: <tag_prefix>/pool. */}}
{{- define "autoscaler.poolLabel" -}}
{{- printf "%s/pool" (include "autoscaler.tagPrefix" .) }}
{{- end }}

{{/* The label naming the evaluation trigger of a Job the controller creates (such Jobs
carry it instead of the pool label; docs/triggers.md): <tag_prefix>/trigger. */}}
{{- define "autoscaler.triggerLabel" -}}
{{- printf "%s/trigger" (include "autoscaler.tagPrefix" .) }}
{{- end }}

{{/* config.file's evaluation triggers (a list; empty with config.existingConfigMap). */}}
{{- define "autoscaler.fileTriggers" -}}
{{- if .Values.config.existingConfigMap }}
{{- toJson list }}
{{- else }}
{{- toJson (get .Values.config.file "triggers" | default list) }}
{{- end }}
{{- end }}

{{/* The Deployments whose model version evaluation triggers may set (rollout step): RBAC
resourceNames for `patch` on deployments, from rbac.rolloutDeployments and config.file's
triggers. Empty: no rollout is granted. */}}
{{- define "autoscaler.rolloutDeployments" -}}
{{- $names := list }}
{{- range .Values.rbac.rolloutDeployments | default list }}{{ $names = append $names . }}{{ end }}
{{- range (include "autoscaler.fileTriggers" . | fromJsonArray) }}
{{- $rollout := get (get . "pipeline" | default dict) "rollout" | default dict }}
{{- with get $rollout "deployment" }}{{ $names = append $names . }}{{ end }}
{{- end }}
{{- toJson (uniq $names | sortAlpha) }}
{{- end }}

{{/* The controller's username in admission requests. */}}
{{- define "autoscaler.username" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "autoscaler.serviceAccountName" .) }}
{{- end }}

{{/* config.file's pools (a list; empty with config.existingConfigMap, which the chart does
not read). */}}
{{- define "autoscaler.filePools" -}}
{{- if .Values.config.existingConfigMap }}
{{- toJson list }}
{{- else }}
{{- toJson (get .Values.config.file "pools" | default list) }}
{{- end }}
{{- end }}

{{/* The names of the workloads of one kind ("deployment" or "statefulset", as `kind`) that
the controller may scale, as {"known": bool, "names": [...]}. Known: listed in
rbac.scaleTargets, or every pool is in config.file (crdPools off, no existingConfigMap).
Unknown: RBAC cannot name them, and scale is granted on every workload of the kind in the
watched namespaces (the admission policy then checks the owner label). */}}
{{- define "autoscaler.scaleNames" -}}
{{- $root := .root }}
{{- $plural := printf "%ss" .kind }}
{{- $listed := get ($root.Values.rbac.scaleTargets | default dict) $plural | default list }}
{{- $names := list }}
{{- range $listed }}{{ $names = append $names . }}{{ end }}
{{- range (include "autoscaler.filePools" $root | fromJsonArray) }}
{{- $target := get . "target" | default dict }}
{{- if and (eq (get $target "kind" | default "deployment") $.kind) (get $target "name") }}
{{- $names = append $names (get $target "name") }}
{{- end }}
{{- end }}
{{- $known := or (gt (len $listed) 0) (and (not $root.Values.crdPools) (not $root.Values.config.existingConfigMap)) }}
{{- toJson (dict "known" $known "names" (uniq $names | sortAlpha)) }}
{{- end }}

{{/* The images a Job of the controller may run: admissionPolicy.jobs.images plus those of
the inline templates of config.file's job pools and evaluation triggers. */}}
{{- define "autoscaler.jobImages" -}}
{{- $images := list }}
{{- range .Values.admissionPolicy.jobs.images }}{{ $images = append $images . }}{{ end }}
{{- range (include "autoscaler.filePools" . | fromJsonArray) }}
{{- $target := get . "target" | default dict }}
{{- if and (eq (get $target "kind" | default "") "job") (get $target "template") }}
{{- $pod := get (get (get (get $target "template") "spec" | default dict) "template" | default dict) "spec" | default dict }}
{{- range concat (get $pod "containers" | default list) (get $pod "initContainers" | default list) }}
{{- with get . "image" }}{{ $images = append $images . }}{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- range (include "autoscaler.fileTriggers" . | fromJsonArray) }}
{{- $pipeline := get . "pipeline" | default dict }}
{{- range list "evaluate" "retrain" }}
{{- $template := get (get $pipeline . | default dict) "template" | default dict }}
{{- $pod := get (get (get $template "spec" | default dict) "template" | default dict) "spec" | default dict }}
{{- range concat (get $pod "containers" | default list) (get $pod "initContainers" | default list) }}
{{- with get . "image" }}{{ $images = append $images . }}{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson (uniq $images | sortAlpha) }}
{{- end }}
