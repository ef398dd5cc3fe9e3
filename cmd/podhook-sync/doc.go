// Command podhook-sync tells the agent about every container already
// running on the node, from the runtime's own records over its CRI socket:
// the containers that started before podhook was installed. `podhook sync`
// runs it; it is its own binary so that the CRI client never weighs on the
// hook's start.
package main
