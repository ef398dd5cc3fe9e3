// Package logfile appends records to a size-bounded log file that many
// short-lived processes write and rotate at once without losing or tearing
// a line.
package logfile
