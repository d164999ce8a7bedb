//go:build integration

package tests

import (
	"reflect"
	"testing"

	"github.com/rbox-dev/rbox/spec"
)

// specFieldChecks names, for each field of spec.Spec, the integration
// tests that fail when a run does not honour it. scripts/run-integration
// runs the whole suite once per executor of pid 1, so a field one executor
// ignores fails there.
var specFieldChecks = map[string][]func(*testing.T){
	"Args":              {TestExitCodes},
	"Env":               {TestEnvironment},
	"Cwd":               {TestCwdFollowsBind},
	"Hostname":          {TestHostnameIsolation},
	"Share":             {TestNamespacesNewAndShared, TestSharedPIDBackgroundKilled},
	"UID":               {TestUIDKeepsCallerOwnership, TestInitKinds},
	"GID":               {TestUIDKeepsCallerOwnership},
	"UIDMap":            {TestIDMaps},
	"GIDMap":            {TestIDMaps},
	"RootFS":            {TestRootfsReadOnly},
	"Layers":            {TestImagePullAndRun},
	"Overlay":           {TestRootfsOverlayThrowaway, TestRootfsOverlayDirPersists, TestHostViewOverlay},
	"StorageDriver":     {TestRootfsOverlayThrowaway, TestRootfsOverlayDirPersists},
	"Mounts":            {TestReadOnlyBind, TestMountFlags, TestPlantedSymlinks},
	"TimeOffsets":       {TestTimeOffsets},
	"Caps":              {TestPrivileges},
	"SeccompFilter":     {TestEscapeSeccompDenyList, TestEscapeSeccompDockerProfile},
	"AllowNested":       {TestNested},
	"PreserveFDs":       {TestEscapeOwnFDs},
	"TTY":               {TestInteractiveShell, TestTIOCSTIDoesNotReachHostTerminal},
	"Net":               {TestNetworkOutbound, TestNetworkIsLoopbackOnly},
	"Publish":           {TestNetworkPublish},
	"AllowHostLoopback": {TestNetworkOutbound},
	"DNS":               {TestNetworkResolverFiles},
	"Egress":            {TestEgressPolicy, TestEgressEnvAndResolvConf},
	"GeneratedFiles":    {TestHome},
	// rbox bwrap's (and their native options').
	"EmptyRoot":     {TestBwrapConformance},
	"CwdFallbacks":  {TestBwrapEnvAndCwdDefault},
	"KeepSession":   {TestBwrapConformance},
	"Argv0":         {TestBwrapNewerOptions},
	"DisableUserns": {TestBwrapNewerOptions},
	"SeccompExtra":  {TestBwrapNewerOptions},
	"AsPID1":        {TestBwrapAsPID1},
	"LockFiles":     {TestBwrapLockFile},
	"Compensation":  {TestEscapeDegradedNoNetNS, TestEscapeDegradedNoPIDNS, TestEscapeDegradedMPTCP, TestEscapeDegradedPrlimit},
	"DieWithParent": {TestBwrapDieWithParent},
	"BwrapErrors":   {TestBwrapBadInput},
	"LegacyMount":   {TestOldKernelFullTier, TestPlantedSymlinks},
	"Limits":        {TestLimitForkBomb, TestLimitMemory, TestUlimitValues, TestLimitCgroupFilesFromHost},
	// Always the fast executor (forkinit.Required), under
	// RBOX_TEST_FORCE_REEXEC too.
	"JoinUserNS":           {TestBwrapJoinNamespaces},
	"JoinPIDNS":            {TestBwrapJoinNamespaces},
	"SwitchUserNS":         {TestBwrapJoinNamespaces, TestEscapeBwrapUserns2},
	"KeepUID":              {TestBwrapJoinNamespaces, TestBwrapUsernsBlockFD},
	"KeepGID":              {TestBwrapJoinNamespaces, TestBwrapUsernsBlockFD},
	"AssertUsernsDisabled": {TestBwrapJoinNamespaces, TestBwrapJoinAssertUsernsDisabled},
	// Always the re-exec executor: pid 1 is made in the network's user
	// namespace.
	"JoinNet": {TestNamedNetSandbox},
	"Bridge":  {TestBridgeReachByName, TestBridgeKill9},
}

// Every field of the Spec names the tests that check it is honoured: a
// new field fails here until it has them.
func TestSpecFieldsChecked(t *testing.T) {
	typ := reflect.TypeOf(spec.Spec{})
	for i := 0; i < typ.NumField(); i++ {
		name := typ.Field(i).Name
		if len(specFieldChecks[name]) == 0 {
			t.Errorf("spec.Spec.%s has no integration test in specFieldChecks that shows both executors honour it", name)
		}
	}
	for name := range specFieldChecks {
		if _, ok := typ.FieldByName(name); !ok {
			t.Errorf("specFieldChecks names %s, which spec.Spec no longer has", name)
		}
	}
}
