// Package resolver decides which runtime created a container and reads the
// pod identity from that runtime's own annotation keys only.
package resolver
