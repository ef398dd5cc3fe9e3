// Command podhook is the OCI runtime hook: the runtime runs it at every
// container's create and poststop stages, and it exits 0 to let the
// container start or 1 to stop it.
package main
