package compile

import (
	"reflect"
	"sync/atomic"
	"unsafe"

	"go.starlark.net/starlark"
)

// Compiled code must see three things go.starlark.net keeps unexported:
// a thread's cancellation reason (set by Thread.Cancel, from any
// goroutine) and step limit (SetMaxExecutionSteps), which the VM checks
// before every instruction, and a module's global variables, which a
// function reads live (scripts may assign a global again, and the
// Module.Globals accessor copies them all into a new map at every call).
// Reading them through offsets found by reflection gives compiled code
// exactly the VM's view: the same reason whoever cancelled (a context, an
// iterator reporting a failure, the step limit). The offsets and field
// types are checked once; if the layout ever differs (another
// go.starlark.net version), layoutOK is false and nothing is compiled:
// every function runs on the VM.
var (
	offCancel, offMaxSteps, offGlobals uintptr
	layoutOK                           = findLayout()
)

func findLayout() bool {
	if smallBase == 0 {
		return false
	}
	tt := reflect.TypeFor[starlark.Thread]()
	cancel, ok1 := tt.FieldByName("cancelReason")
	max, ok2 := tt.FieldByName("maxSteps")
	mt := reflect.TypeFor[starlark.Module]()
	globals, ok3 := mt.FieldByName("globals")
	if !ok1 || !ok2 || !ok3 ||
		cancel.Type != reflect.TypeFor[atomic.Pointer[string]]() ||
		max.Type != reflect.TypeFor[uint64]() ||
		globals.Type != reflect.TypeFor[[]starlark.Value]() {
		return false
	}
	offCancel, offMaxSteps, offGlobals = cancel.Offset, max.Offset, globals.Offset
	return true
}

// cancelReason is Thread.cancelReason: the reason given to the first
// Thread.Cancel since the last Uncancel, or nil.
func cancelReason(th *starlark.Thread) *string {
	return (*atomic.Pointer[string])(unsafe.Add(unsafe.Pointer(th), offCancel)).Load()
}

// maxSteps is Thread.maxSteps (the VM makes 0 mean no limit on a thread's
// first call, before any compiled code runs on it).
func maxSteps(th *starlark.Thread) uint64 {
	return *(*uint64)(unsafe.Add(unsafe.Pointer(th), offMaxSteps))
}

// moduleGlobals is Module.globals: the live slots of the module's globals,
// indexed like resolve's Global bindings. Its header never changes after
// the module is made; the slots change as the module's top level runs.
func moduleGlobals(m *starlark.Module) []starlark.Value {
	return *(*[]starlark.Value)(unsafe.Add(unsafe.Pointer(m), offGlobals))
}
