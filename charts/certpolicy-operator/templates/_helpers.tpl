{{/* The chart's name: app.kubernetes.io/name on every object, as in manifests/. */}}
{{- define "certpolicy.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object names: the release name when it already contains the chart name, else release-chart. */}}
{{- define "certpolicy.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "certpolicy.serviceAccountName" -}}
{{- default (include "certpolicy.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "certpolicy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "certpolicy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "certpolicy.labels" -}}
{{ include "certpolicy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/*
The object of one kind from a multi-document file under files/ (a link into manifests/), as JSON:
  {{- $role := include "certpolicy.fromManifest" (list . "files/rbac.yaml" "ClusterRole") | fromJson }}
An optional fourth item names the object, when the file holds several of that kind.
*/}}
{{- define "certpolicy.fromManifest" -}}
{{- $root := index . 0 -}}{{- $file := index . 1 -}}{{- $kind := index . 2 -}}
{{- $name := "" -}}{{- if gt (len .) 3 -}}{{- $name = index . 3 -}}{{- end -}}
{{- $found := dict -}}
{{- range $doc := regexSplit "(?m)^---\\s*$" ($root.Files.Get $file) -1 -}}
{{- $obj := fromYaml $doc -}}
{{- if and (eq (get $obj "kind") $kind) (or (not $name) (eq (get (get $obj "metadata" | default dict) "name") $name)) -}}{{- $found = $obj -}}{{- end -}}
{{- end -}}
{{- if not $found.spec | and (not $found.rules) -}}{{- fail (printf "%s has no %s" $file $kind) -}}{{- end -}}
{{- toJson $found -}}
{{- end -}}
