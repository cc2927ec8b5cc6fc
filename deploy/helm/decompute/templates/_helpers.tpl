{{/* The name every object carries. */}}
{{- define "decompute.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "decompute.labels" -}}
app.kubernetes.io/name: {{ include "decompute.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "decompute.selector" -}}
app.kubernetes.io/name: {{ include "decompute.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "decompute.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The agent's pod spec; `gpu` true for the GPU nodes' DaemonSet. */}}
{{- define "decompute.podSpec" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
hostPID: false
hostNetwork: false
automountServiceAccountToken: false
{{- if $v.priorityClassName }}
priorityClassName: {{ $v.priorityClassName }}
{{- end }}
{{- if .gpu }}
runtimeClassName: {{ $v.gpu.runtimeClassName }}
{{- end }}
tolerations:
{{- toYaml $v.tolerations | nindent 2 }}
nodeSelector:
{{- if .gpu }}
{{- toYaml (merge (dict) $v.gpu.nodeSelector $v.nodeSelector) | nindent 2 }}
{{- else }}
{{- toYaml $v.nodeSelector | nindent 2 }}
{{- end }}
{{- if and (not .gpu) $v.gpu.enabled }}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions:
          {{- range $k, $val := $v.gpu.nodeSelector }}
            - key: {{ $k }}
              operator: NotIn
              values: [{{ $val | quote }}]
          {{- end }}
{{- end }}
containers:
  - name: decompute
    image: {{ include "decompute.image" $root }}
    imagePullPolicy: {{ $v.image.pullPolicy }}
    args:
      - serve
      - --listen={{ $v.listen.address }}:{{ $v.listen.port }}
      - --interval={{ $v.interval }}
      - --top={{ $v.top }}
      - --sysfs-root=/host/sys
      - --procfs-root=/host/proc
      - --cgroup-root=/host/sys/fs/cgroup
      - --zone={{ $v.zone }}
      - --pue={{ $v.pue }}
      {{- if $v.wue }}
      - --wue={{ $v.wue }}
      {{- end }}
      {{- if not .gpu }}
      - --no-gpu
      {{- end }}
    {{- if .gpu }}
    env:
      - name: NVIDIA_VISIBLE_DEVICES
        value: all
      - name: NVIDIA_DRIVER_CAPABILITIES
        value: utility
    {{- end }}
    ports:
      - name: metrics
        containerPort: {{ $v.listen.port }}
        protocol: TCP
    readinessProbe:
      httpGet:
        path: /healthz
        port: metrics
      periodSeconds: 10
    livenessProbe:
      httpGet:
        path: /healthz
        port: metrics
      periodSeconds: 30
    resources:
      {{- toYaml $v.resources | nindent 6 }}
    securityContext:
      # energy_uj is readable by root only (Linux 5.10+, CVE-2020-8694): uid 0 with every
      # capability dropped, no privilege escalation, a read-only root filesystem.
      runAsUser: 0
      runAsNonRoot: false
      privileged: false
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities:
        drop: ["ALL"]
      seccompProfile:
        type: RuntimeDefault
    volumeMounts:
      - name: sys
        mountPath: /host/sys
        readOnly: true
      - name: proc
        mountPath: /host/proc
        readOnly: true
      {{- if and .gpu $v.gpu.nvmlHostPath }}
      - name: nvml
        mountPath: /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1
        readOnly: true
      {{- end }}
volumes:
  - name: sys
    hostPath:
      path: /sys
      type: Directory
  - name: proc
    hostPath:
      path: /proc
      type: Directory
  {{- if and .gpu $v.gpu.nvmlHostPath }}
  - name: nvml
    hostPath:
      path: {{ $v.gpu.nvmlHostPath }}
      type: File
  {{- end }}
{{- end -}}
