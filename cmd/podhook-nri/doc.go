// Command podhook-nri is the NRI plugin for runtimes without hooks.d
// (containerd): it adds podhook's createRuntime and poststop hooks to every
// container, exactly as the hooks.d registration would. It is its own
// binary so that the hook, which starts for every container, does not carry
// the NRI client.
package main
