// Package jsonscan checks and decodes JSON in one pass, as encoding/json
// decodes it but without its reflection, which a process that decodes one
// document pays for on every start.
package jsonscan
