// Package client is a Sotto client: it talks to its provider through a
// Provider, builds Sphinx packets over the PKI document's stratified
// topology and sends them on Loopix's cover streams.
package client
