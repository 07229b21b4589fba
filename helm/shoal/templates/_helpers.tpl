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
{{- $drain := dict "ratePerSecond" (int .Values.drain.ratePerSecond) "notReadyDelayMs" (int .Values.drain.notReadyDelayMs) }}
{{- if .Values.drain.serverReference }}{{ $_ := set $drain "serverReference" .Values.drain.serverReference }}{{ end }}
{{- $_ := set $c "drain" $drain }}
{{- $_ := set $c "admin" (dict "enabled" .Values.admin.enabled) }}
{{- $_ := set $c "cluster" (dict "keyPrefix" .Values.redis.keyPrefix "heartbeatMs" (int .Values.redis.heartbeatMs) "livenessTimeoutMs" (int .Values.redis.livenessTimeoutMs)) }}
{{- $_ := set $c "proxyProtocol" (dict "tcp" .Values.proxyProtocol.tcp "tls" .Values.proxyProtocol.tls "trustedProxies" .Values.proxyProtocol.trustedProxies) }}
{{- if .Values.tls.enabled }}
{{- $tls := dict "port" 8883 "wssPort" 8084 "certFile" "/etc/shoal/tls/tls.crt" "keyFile" "/etc/shoal/tls/tls.key" "requestClientCert" .Values.tls.requestClientCert "rejectUnauthorized" .Values.tls.rejectUnauthorized }}
{{- if or .Values.tls.ca .Values.tls.existingSecret }}{{ $_ := set $tls "caFile" "/etc/shoal/tls/ca.crt" }}{{ end }}
{{- $_ := set $c "tls" $tls }}
{{- end }}
{{- $auth := dict "required" .Values.auth.required }}
{{- if or .Values.auth.passwords .Values.auth.existingSecret }}{{ $_ := set $auth "passwordFile" "/etc/shoal/auth/passwords" }}{{ end }}
{{- if or .Values.auth.acl .Values.auth.existingSecret }}{{ $_ := set $auth "aclFile" "/etc/shoal/auth/acl" }}{{ end }}
{{- $_ := set $c "auth" $auth }}
{{- toYaml (mustMergeOverwrite $c (deepCopy .Values.config)) }}
{{- end }}
