package interfaces

// NewStorageGRPCServer exposes the unexported storage server shim to the
// external test package, for FuzzStorageServerWire. It exists only in test
// builds: plugin authors never see a shim.
var NewStorageGRPCServer = newStorageGRPCServer
