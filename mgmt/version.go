package mgmt

// Version is the Sluice version, set at build time with
// -ldflags "-X github.com/sluicelb/sluice/mgmt.Version=…".
var Version = "0.1.0-dev"
