{{- define "podhook.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}

{{- define "podhook.securityContext" -}}
securityContext:
  privileged: false
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end -}}

{{- define "podhook.installArgs" -}}
{{- if eq .Values.interface "nri" }}
- --interface=nri
{{- end }}
{{- end -}}

{{- define "podhook.hostArgs" -}}
- --host-root=/host
- --install-dir={{ .Values.hostPaths.installDir }}
{{- if ne .Values.interface "nri" }}
- --hooks-dir={{ .Values.hostPaths.hooksDir }}
{{- end }}
- --config-from=/etc/podhook/podhook-config.json
{{- if and .Values.crioDropin (ne .Values.interface "nri") }}
- --crio-dropin
{{- end }}
{{- end -}}

{{- define "podhook.mounts" -}}
- name: install-dir
  mountPath: /host{{ .Values.hostPaths.installDir }}
{{- if ne .Values.interface "nri" }}
- name: hooks-dir
  mountPath: /host{{ .Values.hostPaths.hooksDir }}
- name: crio-conf
  mountPath: /host{{ .Values.hostPaths.crioConf }}
{{- end }}
- name: config
  mountPath: /etc/podhook
  readOnly: true
{{- end -}}

{{/* The directory of the hook's log (log_file, extraConfig's first), or ""
when the log is not a file ("-", "none"). */}}
{{- define "podhook.logDir" -}}
{{- $f := .Values.extraConfig.log_file | default .Values.logFile -}}
{{- if hasPrefix "/" $f }}{{ dir $f }}{{ end -}}
{{- end -}}
