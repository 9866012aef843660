{{/* The chart's name (nameOverride replaces it): app.kubernetes.io/name on every object, as in manifests/. */}}
{{- define "certpolicy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object names: fullnameOverride, else the release name when it already contains the chart's
     name, else release-name. */}}
{{- define "certpolicy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "certpolicy.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* serviceAccount.name, else the full name; with serviceAccount.create false it must exist. */}}
{{- define "certpolicy.serviceAccountName" -}}
{{- if and (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) -}}
{{- fail "serviceAccount.create=false needs serviceAccount.name (the existing ServiceAccount the RBAC bindings name)" -}}
{{- end -}}
{{- default (include "certpolicy.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* repository:tag, or repository@digest when image.digest is set (the tag is then ignored). */}}
{{- define "certpolicy.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* global.imagePullSecrets (shared with other charts) then imagePullSecrets, without repeats. */}}
{{- define "certpolicy.imagePullSecrets" -}}
{{- $all := list -}}
{{- range (concat ((.Values.global | default dict).imagePullSecrets | default list) .Values.imagePullSecrets) -}}
{{- $item := . -}}{{- if kindIs "string" . -}}{{- $item = dict "name" . -}}{{- end -}}
{{- if not (has $item $all) -}}{{- $all = append $all $item -}}{{- end -}}
{{- end -}}
{{- with $all -}}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end -}}
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

{{/*
The container's args: `certpolicy run`, the liveness URL, a flag for each value of `operator`
that differs from the operator's own default (so the defaults render what manifests/ holds),
then extraArgs. A YAML list.
*/}}
{{- define "certpolicy.args" -}}
{{- $o := .Values.operator -}}
{{- $args := list "run" (printf "--liveness=http://0.0.0.0:%v/healthz" .Values.healthPort) -}}
{{- if $o.probeAllow -}}{{- $args = append $args (printf "--probe-allow=%s" (join "," $o.probeAllow)) -}}{{- end -}}
{{- if $o.allowSystemNamespaces -}}{{- $args = append $args "--allow-system-namespaces" -}}{{- end -}}
{{- if ne $o.certManagerNamespace "cert-manager" -}}{{- $args = append $args (printf "--cert-manager-namespace=%s" $o.certManagerNamespace) -}}{{- end -}}
{{- if not $o.leaderElect -}}{{- $args = append $args "--no-leader-elect" -}}{{- end -}}
{{- if ne $o.leaseNamespace "kube-system" -}}{{- $args = append $args (printf "--lease-namespace=%s" $o.leaseNamespace) -}}{{- end -}}
{{- if ne $o.leaseName "certpolicy-operator" -}}{{- $args = append $args (printf "--lease-name=%s" $o.leaseName) -}}{{- end -}}
{{- if ne (toString $o.leaseDuration) "15" -}}{{- $args = append $args (printf "--lease-duration=%v" $o.leaseDuration) -}}{{- end -}}
{{- if ne (toString $o.renewDeadline) "10" -}}{{- $args = append $args (printf "--renew-deadline=%v" $o.renewDeadline) -}}{{- end -}}
{{- if ne (toString $o.retryPeriod) "2" -}}{{- $args = append $args (printf "--retry-period=%v" $o.retryPeriod) -}}{{- end -}}
{{- if eq $o.logLevel "debug" -}}{{- $args = append $args "--verbose" -}}{{- end -}}
{{- toYaml (concat $args .Values.extraArgs) -}}
{{- end -}}
