{{/*
The gateway's environment: the one place that maps chart values to the gateway's
settings (pydantic-settings, prefix GATEWAY_, see gateway/settings.py). Secrets are
referenced with secretKeyRef, never copied into the rendered manifests.
*/}}

{{- define "gemma-serving.gateway.env" -}}
{{- $gw := .Values.gateway -}}
{{- /* uvicorn (the image's entrypoint) reads UVICORN_*: on SIGTERM it waits up to the
longest stream for open responses, inside terminationGracePeriodSeconds. */}}
- name: UVICORN_PORT
  value: {{ $gw.port | quote }}
- name: UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN
  value: {{ $gw.maxStreamSeconds | quote }}
- name: UVICORN_LOG_LEVEL
  value: {{ $gw.logLevel | lower | quote }}
- name: GATEWAY_UPSTREAM_URL
  value: {{ include "gemma-serving.upstreamUrl" . | quote }}
- name: GATEWAY_UPSTREAM_READ_TIMEOUT
  value: {{ $gw.maxStreamSeconds | quote }}
- name: GATEWAY_ADMIN_KEY
  valueFrom:
    secretKeyRef:
      name: {{ required "gateway.adminKeySecret.name: name an existing Secret with the admin API key" $gw.adminKeySecret.name }}
      key: {{ $gw.adminKeySecret.key }}
{{ include "gemma-serving.gateway.redisEnv" . }}
- name: GATEWAY_LIMITS__MAX_BODY_BYTES
  value: {{ $gw.limits.maxRequestBytes | int64 | quote }}
- name: GATEWAY_LIMITS__BODY_BYTES_IN_FLIGHT
  value: {{ $gw.limits.bodyBytesInFlight | int64 | quote }}
- name: GATEWAY_LIMITS__PEER_BODY_BYTES_IN_FLIGHT
  value: {{ $gw.limits.peerBodyBytesInFlight | int64 | quote }}
- name: GATEWAY_LIMITS__BODY_TIMEOUT
  value: {{ $gw.limits.bodyTimeoutSeconds | quote }}
- name: GATEWAY_LIMITS__BODY_STALL_TIMEOUT
  value: {{ $gw.limits.bodyStallSeconds | quote }}
{{- /* The gateway's HTTP protocol (the image's uvicorn --http) reads GATEWAY_SERVER__*. */}}
- name: GATEWAY_SERVER__HEADER_TIMEOUT
  value: {{ $gw.server.headerTimeoutSeconds | quote }}
- name: GATEWAY_SERVER__KEEP_ALIVE_TIMEOUT
  value: {{ $gw.server.keepAliveSeconds | quote }}
- name: GATEWAY_SERVER__UNREAD_BODY_TIMEOUT
  value: {{ $gw.server.unreadBodySeconds | quote }}
- name: GATEWAY_SERVER__MAX_HEADER_BYTES
  value: {{ $gw.server.maxHeaderBytes | int64 | quote }}
- name: GATEWAY_SERVER__MAX_CONNECTIONS
  value: {{ $gw.server.maxConnections | int64 | quote }}
- name: GATEWAY_FALLBACK_NAMED_MODELS
  value: {{ $gw.routing.fallbackNamedModels | quote }}
- name: GATEWAY_FAIR_SHARE__ENABLED
  value: {{ $gw.fairShare.enabled | quote }}
- name: GATEWAY_FAIR_SHARE__MAX_WAIT
  value: {{ $gw.fairShare.maxWaitSeconds | quote }}
- name: GATEWAY_FAIR_SHARE__BATCH_FRACTION
  value: {{ $gw.fairShare.batchFraction | quote }}
{{- /* The fewest replicas that run: each takes that part of an engine's slots. */}}
- name: GATEWAY_FAIR_SHARE__GATEWAY_REPLICAS
  value: {{ ternary $gw.autoscaling.minReplicas $gw.replicaCount $gw.autoscaling.enabled | quote }}
- name: GATEWAY_GUARD__MODEL
  value: {{ $gw.guard.model | quote }}
- name: GATEWAY_GUARD__DEFAULT_THRESHOLD
  value: {{ $gw.guard.defaultThreshold | quote }}
- name: GATEWAY_GUARD__STREAM_CHECK_CHARS
  value: {{ $gw.guard.streamCheckChars | int64 | quote }}
- name: GATEWAY_READY_CAPABILITIES
  value: {{ $gw.probes.readyCapabilities | toJson | quote }}
{{ include "gemma-serving.gateway.batchEnv" . }}
{{ include "gemma-serving.otelEnv" (dict "ctx" . "service" "gemma-gateway") }}
{{- with $gw.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
GATEWAY_QUOTA__REDIS_URL (keys and quotas). With a password Secret the URL is assembled by Kubernetes'
$(VAR) expansion from REDIS_PASSWORD, which must come first.
*/}}
{{- define "gemma-serving.gateway.redisEnv" -}}
{{- $r := .Values.redis -}}
{{- if eq $r.mode "external" }}
{{- if $r.external.urlSecret.name }}
- name: GATEWAY_QUOTA__REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $r.external.urlSecret.name }}
      key: {{ $r.external.urlSecret.key }}
{{- else }}
- name: GATEWAY_QUOTA__REDIS_URL
  value: {{ required "redis.external.url or redis.external.urlSecret.name is required when redis.mode is external" $r.external.url | quote }}
{{- end }}
{{- else if $r.auth.existingSecret }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $r.auth.existingSecret }}
      key: {{ $r.auth.key }}
- name: GATEWAY_QUOTA__REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:%v/%v" (include "gemma-serving.redis.host" .) $r.port $r.database | quote }}
{{- else }}
- name: GATEWAY_QUOTA__REDIS_URL
  value: {{ printf "redis://%s:%v/%v" (include "gemma-serving.redis.host" .) $r.port $r.database | quote }}
{{- end }}
{{- end }}

{{/*
The Batch API (GATEWAY_BATCHES__*): off, or on with the Ray Client address of the cluster,
the Serve application whose engines run the jobs, and the shared files volume. HOME points
at the writable /tmp: the Ray image's home belongs to its own user and the root
filesystem is read-only.
*/}}
{{- define "gemma-serving.gateway.batchEnv" -}}
{{- $b := .Values.gateway.batchApi -}}
- name: GATEWAY_BATCHES__ENABLED
  value: {{ $b.enabled | quote }}
{{- if $b.enabled }}
- name: GATEWAY_BATCHES__RAY_ADDRESS
  value: {{ include "gemma-serving.batch.rayAddress" . | quote }}
- name: GATEWAY_BATCHES__SERVE_APP
  value: {{ include "gemma-serving.batch.serveApp" . | quote }}
- name: GATEWAY_BATCHES__FILES_DIR
  value: {{ $b.files.mountPath | quote }}
- name: HOME
  value: /tmp
{{- end }}
{{- end }}

{{/* ray://<head Service>:<client port> of this release's RayService, or batchApi.rayAddress. */}}
{{- define "gemma-serving.batch.rayAddress" -}}
{{- if .Values.gateway.batchApi.rayAddress }}
{{- .Values.gateway.batchApi.rayAddress }}
{{- else if .Values.serving.enabled }}
{{- printf "ray://%s.%s.svc:%v" (include "gemma-serving.ray.headService" .) .Release.Namespace (include "gemma-serving.ray.clientPort" .) }}
{{- else }}
{{- fail "gateway.batchApi.rayAddress is required when serving.enabled is false" }}
{{- end }}
{{- end }}

{{/*
The Serve application the jobs use: batchApi.serveApp, or the application of the
profile's serve config that imports serving.app:build_app (the catalog's engines).
*/}}
{{- define "gemma-serving.batch.serveApp" -}}
{{- if .Values.gateway.batchApi.serveApp }}
{{- .Values.gateway.batchApi.serveApp }}
{{- else if .Values.serving.enabled }}
{{- $config := .Files.Get (printf "serve-configs/%s.yaml" .Values.serving.profile) | fromYaml }}
{{- $names := list }}
{{- range $app := ($config.applications | default list) }}
{{- if eq ($app.import_path | default "") "serving.app:build_app" }}{{ $names = append $names $app.name }}{{ end }}
{{- end }}
{{- if ne (len $names) 1 }}
{{- fail (printf "gateway.batchApi.serveApp: the serve config of profile %q has %d serving.app:build_app applications; name the one for batch jobs" .Values.serving.profile (len $names)) }}
{{- end }}
{{- first $names }}
{{- else }}
{{- fail "gateway.batchApi.serveApp is required when serving.enabled is false" }}
{{- end }}
{{- end }}

{{/* Standard OpenTelemetry SDK variables. Usage: (dict "ctx" $ "service" "name") */}}
{{- define "gemma-serving.otelEnv" -}}
{{- $o := .ctx.Values.observability.otel -}}
- name: OTEL_SERVICE_NAME
  value: {{ .service | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "service.namespace=%s,deployment.environment=%s" .ctx.Release.Name .ctx.Release.Namespace | quote }}
{{- if $o.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $o.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $o.protocol | quote }}
- name: OTEL_TRACES_SAMPLER
  value: parentbased_traceidratio
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ $o.samplingRatio | quote }}
{{- else }}
- name: OTEL_TRACES_EXPORTER
  value: none
{{- end }}
{{- end }}
