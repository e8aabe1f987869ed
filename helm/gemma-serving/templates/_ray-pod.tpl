{{/*
Ray pod fragments shared by the head and the worker groups of the RayService.
*/}}

{{/* GKE node label value (cloud.google.com/gke-accelerator) for each Ray accelerator type. */}}
{{- define "gemma-serving.gkeAccelerator" -}}
{{- $map := dict
  "T4" "nvidia-tesla-t4"
  "L4" "nvidia-l4"
  "A100-40G" "nvidia-tesla-a100"
  "A100-80G" "nvidia-a100-80gb"
  "H100" "nvidia-h100-80gb"
  "H200" "nvidia-h200-141gb"
  "B200" "nvidia-b200" -}}
{{- $label := get $map .accelerator -}}
{{- if not $label -}}
{{- fail (printf "serving.workerGroups.%s.accelerator %q is not one of %s" .group .accelerator (keys $map | sortAlpha | join ", ")) -}}
{{- end -}}
{{- $label -}}
{{- end }}

{{/* Environment of every Ray container. */}}
{{- define "gemma-serving.ray.env" -}}
{{- $s := .Values.serving -}}
- name: HF_HOME
  value: {{ $s.modelCache.mountPath | quote }}
{{- with $s.huggingface.tokenSecret.name }}
- name: HF_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $s.huggingface.tokenSecret.key }}
{{- end }}
{{- /* Serve's controller loop and metrics export cadence (serving.runner.SERVE_HOUSEKEEPING_ENV). */}}
- name: RAY_SERVE_CONTROL_LOOP_INTERVAL_S
  value: {{ $s.housekeeping.controlLoopIntervalS | quote }}
- name: RAY_SERVE_METRICS_EXPORT_INTERVAL_MS
  value: {{ $s.housekeeping.metricsExportIntervalMs | quote }}
{{ include "gemma-serving.otelEnv" (dict "ctx" . "service" "gemma-ray-serve") }}
{{- with .Values.observability.otel }}
{{- if .endpoint }}
{{- /* Ray Serve's own tracing (proxy, replicas) reads these; the proxy reads nothing else. */}}
- name: RAY_SERVE_TRACING_EXPORTER_IMPORT_PATH
  value: "serving.tracing:span_processors"
- name: RAY_SERVE_TRACING_SAMPLING_RATIO
  value: {{ .samplingRatio | quote }}
{{- end }}
{{- end }}
{{- with $s.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Ports every Ray container exposes: Serve's HTTP proxy and the metrics exporter. */}}
{{- define "gemma-serving.ray.ports" -}}
- name: serve
  containerPort: {{ .Values.serving.servePort }}
  protocol: TCP
- name: metrics
  containerPort: {{ .Values.serving.metricsPort }}
  protocol: TCP
{{- end }}

{{/* The model cache volume, per modelCache.type. Usage: (dict "ctx" $ "component" "ray-worker") */}}
{{- define "gemma-serving.ray.modelCacheVolume" -}}
{{- $c := .ctx.Values.serving.modelCache -}}
- name: model-cache
{{- if eq $c.type "ephemeral" }}
  ephemeral:
    volumeClaimTemplate:
      metadata:
        labels:
          {{- include "gemma-serving.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 10 }}
      spec:
        accessModes: ["ReadWriteOnce"]
        storageClassName: {{ $c.storageClassName }}
        resources:
          requests:
            storage: {{ $c.size }}
{{- else if eq $c.type "pvc" }}
  persistentVolumeClaim:
    claimName: {{ required "serving.modelCache.existingClaim is required when modelCache.type is pvc" $c.existingClaim }}
{{- else if eq $c.type "emptyDir" }}
  emptyDir:
    sizeLimit: {{ $c.size }}
{{- else }}
{{- fail (printf "serving.modelCache.type %q must be ephemeral, pvc or emptyDir" $c.type) }}
{{- end }}
{{- end }}

{{/* Ray images run as user "ray" (uid 1000, group users 100). */}}
{{- define "gemma-serving.ray.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 100
fsGroup: 100
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
GPU demand of the serve config, per Ray accelerator type, as YAML:
  L4: {gke: nvidia-l4, min: 5, max: 20}
read from the catalog that `gemma-serving serve-config` embeds in each application's
args (profile -> target GPU; per variant: autoscaling min/max_replicas x
tensor_parallel_size on that target). Defaults mirror serving.catalog (the export
omits default values): replicas 1..1, tensor_parallel_size 1. CPU targets need no GPU.
Usage: include "gemma-serving.gpuDemand" <parsed serve config>
*/}}
{{- define "gemma-serving.gpuDemand" -}}
{{- $demand := dict }}
{{- range $app := (.applications | default list) }}
{{- $args := $app.args | default dict }}
{{- $catalog := $args.catalog | default dict }}
{{- $profile := get ($catalog.profiles | default dict) ($args.profile | default "") }}
{{- $gpu := dict }}
{{- if $profile }}{{ $gpu = get ($catalog.gpus | default dict) $profile.target }}{{ end }}
{{- if $gpu }}
{{- $accel := $gpu.ray_accelerator_type }}
{{- $d := get $demand $accel | default (dict "gke" $profile.target "min" 0 "max" 0) }}
{{- range $id := $profile.variants }}
{{- $variant := get $catalog.variants $id }}
{{- $engine := get $variant.engines $profile.target | default dict }}
{{- $scale := dict }}
{{- if hasKey $engine "autoscaling" }}{{ $scale = $engine.autoscaling }}{{ else if hasKey $variant "autoscaling" }}{{ $scale = $variant.autoscaling }}{{ end }}
{{- $tp := int (ternary $engine.tensor_parallel_size 1 (hasKey $engine "tensor_parallel_size")) }}
{{- $min := int (ternary $scale.min_replicas 1 (hasKey $scale "min_replicas")) }}
{{- $max := int (ternary $scale.max_replicas 1 (hasKey $scale "max_replicas")) }}
{{- $_ := set $d "min" (add $d.min (mul $min $tp)) }}
{{- $_ := set $d "max" (add $d.max (mul $max $tp)) }}
{{- end }}
{{- $_ := set $demand $accel $d }}
{{- end }}
{{- end }}
{{- toYaml $demand }}
{{- end }}

{{/*
Checks the worker groups against the serve config's GPU demand: every GPU type it needs
has an enabled group, whose GKE label agrees with the catalog's GPU name, and whose
bounds can hold the minimum replicas. Usage: (dict "ctx" $ "demand" <gpuDemand dict>)
*/}}
{{- define "gemma-serving.checkWorkerGroups" -}}
{{- $groups := .ctx.Values.serving.workerGroups }}
{{- range $accel, $d := .demand }}
{{- $found := false }}
{{- range $name, $g := $groups }}
{{- if and $g.enabled (eq $g.accelerator $accel) }}
{{- $found = true }}
{{- $gke := include "gemma-serving.gkeAccelerator" (dict "group" $name "accelerator" $accel) }}
{{- if ne $gke $d.gke }}
{{- fail (printf "the catalog names the %s GPU %q but GKE labels it %q" $accel $d.gke $gke) }}
{{- end }}
{{- $bounds := include "gemma-serving.workerBounds" (dict "group" $g "demand" $d) | fromYaml }}
{{- if lt (mul $bounds.max $g.gpusPerWorker) (int $d.min) }}
{{- fail (printf "serving.workerGroups.%s: maxReplicas %v x %v GPUs cannot hold the %v GPUs the profile's min_replicas need" $name $bounds.max $g.gpusPerWorker $d.min) }}
{{- end }}
{{- end }}
{{- end }}
{{- if not $found }}
{{- fail (printf "serving.profile %q needs %s GPUs (%s) but no enabled serving.workerGroups entry has accelerator: %s" $.ctx.Values.serving.profile $accel $d.gke $accel) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A worker group's replica bounds: the values when set, else derived from the GPU demand
(ceil(GPUs needed / gpusPerWorker)). Usage: (dict "group" $g "demand" <demand or empty>)
*/}}
{{- define "gemma-serving.workerBounds" -}}
{{- $g := .group }}
{{- $d := .demand | default (dict "min" 0 "max" 0) }}
{{- $per := int $g.gpusPerWorker }}
{{- $min := 0 }}
{{- if kindIs "invalid" $g.minReplicas }}
{{- $min = div (add (int $d.min) (sub $per 1)) $per }}
{{- else }}
{{- $min = int $g.minReplicas }}
{{- end }}
{{- $max := 0 }}
{{- if kindIs "invalid" $g.maxReplicas }}
{{- $max = max $min (div (add (int $d.max) (sub $per 1)) $per) }}
{{- else }}
{{- $max = int $g.maxReplicas }}
{{- end }}
min: {{ $min }}
max: {{ $max }}
{{- end }}
