{{/* Names, labels and the values derived from several others. */}}

{{- define "shoal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shoal.fullname" -}}
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

{{/*
The label the ServiceMonitor and PodMonitor take Prometheus' `job` from (jobLabel): the full name,
so two releases never share a job; the PrometheusRule matches it (files/alerts.yml's job="shoal").
*/}}
{{- define "shoal.jobLabel" -}}
shoal.io/job: {{ include "shoal.fullname" . }}
{{- end }}

{{- define "shoal.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shoal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shoal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "shoal.labels" -}}
helm.sh/chart: {{ include "shoal.chart" . }}
{{ include "shoal.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "shoal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "shoal.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "true" when some Redis setting is given (cluster mode). */}}
{{- define "shoal.clustered" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret .Values.redis.sentinel.hosts .Values.redis.cluster.nodes -}}
true
{{- end }}
{{- end }}

{{/* The Redis URL built from url / sentinel / cluster (stored in the Secret, never in the ConfigMap). */}}
{{- define "shoal.redisUrl" -}}
{{- $auth := "" }}
{{- if .Values.redis.password }}{{ $auth = printf ":%s@" (urlquery .Values.redis.password) }}{{ end }}
{{- if .Values.redis.url }}
{{- .Values.redis.url }}
{{- else if .Values.redis.sentinel.hosts }}
{{- printf "redis+sentinel://%s%s/%s" $auth (join "," .Values.redis.sentinel.hosts) (required "redis.sentinel.masterName is required with redis.sentinel.hosts" .Values.redis.sentinel.masterName) }}
{{- else if .Values.redis.cluster.nodes }}
{{- printf "redis+cluster://%s%s" $auth (join "," .Values.redis.cluster.nodes) }}
{{- end }}
{{- end }}

{{/* Seconds Kubernetes waits after preStop starts: preStop sleep + drain + margin. */}}
{{- define "shoal.terminationGracePeriodSeconds" -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add (int .Values.drain.preStopSleepSeconds) (div (add (int .Values.drain.notReadyDelayMs) (int .Values.drain.timeoutMs)) 1000) 10 }}
{{- else }}
{{- .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{- define "shoal.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "shoal.fullname" .)) .Values.tls.existingSecret }}
{{- end }}

{{- define "shoal.authSecretName" -}}
{{- default (include "shoal.fullname" .) .Values.auth.existingSecret }}
{{- end }}

{{/* The Shoal config file (docs/configuration.md). Secrets come through the environment. */}}
{{- define "shoal.config" -}}
{{- $c := dict "host" "0.0.0.0" "port" 1883 "httpPort" 9090 "logLevel" .Values.logLevel "shutdownTimeoutMs" (int .Values.drain.timeoutMs) }}
{{- $_ := set $c "wsPort" (ternary 8083 0 .Values.listeners.ws) }}
{{- $_ := set $c "mqtt" (dict "maxKeepAliveSeconds" (int .Values.maxKeepAliveSeconds)) }}
{{- $drain := dict "ratePerSecond" (int .Values.drain.ratePerSecond) "notReadyDelayMs" (int .Values.drain.notReadyDelayMs) }}
{{- if .Values.drain.serverReference }}{{ $_ := set $drain "serverReference" .Values.drain.serverReference }}{{ end }}
{{- $_ := set $c "drain" $drain }}
{{- $_ := set $c "admin" (dict "enabled" .Values.admin.enabled) }}
{{- $_ := set $c "cluster" (dict "keyPrefix" .Values.redis.keyPrefix "heartbeatMs" (int .Values.redis.heartbeatMs) "livenessTimeoutMs" (int .Values.redis.livenessTimeoutMs)) }}
{{- $_ := set $c "proxyProtocol" (dict "tcp" .Values.proxyProtocol.tcp "tls" .Values.proxyProtocol.tls "trustedProxies" .Values.proxyProtocol.trustedProxies) }}
{{- if .Values.tls.enabled }}
{{- $tls := dict "port" 8883 "wssPort" 8084 "certFile" "/etc/shoal/tls/tls.crt" "keyFile" "/etc/shoal/tls/tls.key" "requestClientCert" .Values.tls.requestClientCert "rejectUnauthorized" .Values.tls.rejectUnauthorized }}
{{- /* A CA only verifies client certificates: ca.crt of an existing Secret (cert-manager's ACME ones have none) is read only when they are asked for. */}}
{{- if or .Values.tls.ca (and .Values.tls.existingSecret .Values.tls.requestClientCert) }}{{ $_ := set $tls "caFile" "/etc/shoal/tls/ca.crt" }}{{ end }}
{{- $_ := set $c "tls" $tls }}
{{- end }}
{{- $auth := dict "required" .Values.auth.required }}
{{- if include "shoal.authPasswords" . }}{{ $_ := set $auth "passwordFile" "/etc/shoal/auth/passwords" }}{{ end }}
{{- if include "shoal.authAcl" . }}{{ $_ := set $auth "aclFile" "/etc/shoal/auth/acl" }}{{ end }}
{{- $_ := set $c "auth" $auth }}
{{- include "shoal.checkConfig" . }}
{{- toYaml (mustMergeOverwrite $c (deepCopy .Values.config)) }}
{{- end }}

{{/* The Secret key of the password file ("" = none): the chart's own Secret, or existingSecret's. */}}
{{- define "shoal.authPasswords" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.auth.existingSecretPasswordsKey }}{{ else if .Values.auth.passwords }}passwords{{ end }}
{{- end }}

{{/* The Secret key of the ACL file ("" = none). */}}
{{- define "shoal.authAcl" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.auth.existingSecretAclKey }}{{ else if .Values.auth.acl }}acl{{ end }}
{{- end }}

{{/*
Keys of `config:` the chart sets from its own values (ports the Service, probes and container ports
use; the grace period; the mounted files): setting one there would silently break what is derived
from it, so the chart refuses it and names the value to use.
*/}}
{{- define "shoal.checkConfig" -}}
{{- $managed := dict
  "host" "the pod listens on every address"
  "port" "the Service and container port 1883"
  "wsPort" "use listeners.ws"
  "httpPort" "the probes, the metrics port and the monitors use 9090"
  "shutdownTimeoutMs" "use drain.timeoutMs: it also sizes terminationGracePeriodSeconds"
  "logLevel" "use logLevel"
  "drain" "use the drain values"
  "admin.enabled" "use admin.enabled"
  "admin.token" "use admin.token or admin.existingSecret"
  "redis" "use the redis values"
  "cluster.keyPrefix" "use redis.keyPrefix"
  "cluster.heartbeatMs" "use redis.heartbeatMs"
  "cluster.livenessTimeoutMs" "use redis.livenessTimeoutMs"
  "proxyProtocol" "use the proxyProtocol values"
  "tls.port" "the Service and container port 8883"
  "tls.wssPort" "the Service and container port 8084"
  "tls.certFile" "the tls Secret is mounted at /etc/shoal/tls"
  "tls.keyFile" "the tls Secret is mounted at /etc/shoal/tls"
  "tls.caFile" "use tls.ca, or tls.existingSecret with tls.requestClientCert"
  "tls.requestClientCert" "use tls.requestClientCert"
  "tls.rejectUnauthorized" "use tls.rejectUnauthorized"
  "auth.passwordFile" "use auth.passwords or auth.existingSecret"
  "auth.aclFile" "use auth.acl or auth.existingSecret"
  "auth.required" "use auth.required"
  "mqtt.maxKeepAliveSeconds" "use maxKeepAliveSeconds: it must fit the load balancer's idle timeout" }}
{{- range $path, $why := $managed }}
{{- $node := $.Values.config }}
{{- $parts := splitList "." $path }}
{{- $found := true }}
{{- range $parts }}{{ if and $found (kindIs "map" $node) (hasKey $node .) }}{{ $node = index $node . }}{{ else }}{{ $found = false }}{{ end }}{{ end }}
{{- if $found }}{{ fail (printf "config.%s is set by the chart (%s): remove it from config" $path $why) }}{{ end }}
{{- end }}
{{- end }}
