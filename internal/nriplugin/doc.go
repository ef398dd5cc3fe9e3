// Package nriplugin is podhook's NRI plugin: on containerd (and CRI-O with
// NRI), where there is no hooks.d, it adds the same createRuntime and
// poststop hooks to every container the runtime creates.
package nriplugin
