/* The offsets process/pylayouts.ts carries for CPython 3.8-3.12 (and, for 3.13+, the places of
 * the offsets inside _Py_DebugOffsets that process/debugfields.ts carries), computed by the C compiler from
 * each version's own installed headers (Include/cpython/*.h, Include/internal/pycore_*.h), so the
 * table can be checked against them: `deno run -A tools/pylayouts.ts` compiles this once per
 * interpreter (gcc, the headers it installed) and compares. Prints "name offset" per field. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#include "frameobject.h"
#if PY_MINOR_VERSION >= 11
#include "internal/pycore_frame.h"
#endif
#include "internal/pycore_pystate.h"
#if PY_MINOR_VERSION >= 9
#include "internal/pycore_runtime.h"
#include "internal/pycore_interp.h"
#endif
#include "internal/pycore_gil.h"

#define SHOW(name, value) printf("%s %zu\n", name, (size_t)(value))

#if PY_MINOR_VERSION >= 13
/* 3.13+: where each offset the reader takes sits inside _Py_DebugOffsets (process/debugfields.ts). */
#define PLACE(name, field) SHOW("debug." name, offsetof(_Py_DebugOffsets, field))
static void debug_places(void) {
  /* The head every 3.13+ keeps in place (process/debugoffsets.ts DEBUG_HEAD). */
  SHOW("head.runtime.interpretersHead", offsetof(_Py_DebugOffsets, runtime_state.interpreters_head));
  SHOW("head.interp.id", offsetof(_Py_DebugOffsets, interpreter_state.id));
  SHOW("head.interp.next", offsetof(_Py_DebugOffsets, interpreter_state.next));
  SHOW("head.interp.threadsHead", offsetof(_Py_DebugOffsets, interpreter_state.threads_head));
  PLACE("thread.next", thread_state.next);
  PLACE("thread.interp", thread_state.interp);
  PLACE("thread.currentFrame", thread_state.current_frame);
  PLACE("thread.threadId", thread_state.thread_id);
  PLACE("thread.nativeThreadId", thread_state.native_thread_id);
  PLACE("frame.previous", interpreter_frame.previous);
  PLACE("frame.executable", interpreter_frame.executable);
  PLACE("frame.instrPtr", interpreter_frame.instr_ptr);
  PLACE("frame.localsplus", interpreter_frame.localsplus);
  PLACE("code.filename", code_object.filename);
  PLACE("code.name", code_object.name);
  PLACE("code.qualname", code_object.qualname);
  PLACE("code.linetable", code_object.linetable);
  PLACE("code.firstlineno", code_object.firstlineno);
  PLACE("code.codeAdaptive", code_object.co_code_adaptive);
  PLACE("code.localsplusNames", code_object.localsplusnames);
  PLACE("code.localsplusKinds", code_object.localspluskinds);
  PLACE("gil.cevalGil", interpreter_state.ceval_gil);
  PLACE("gil.state", interpreter_state.gil_runtime_state);
  PLACE("gil.locked", interpreter_state.gil_runtime_state_locked);
  PLACE("gil.holder", interpreter_state.gil_runtime_state_holder);
  PLACE("objects.obType", pyobject.ob_type);
  PLACE("objects.tpName", type_object.tp_name);
  PLACE("objects.tupleItems", tuple_object.ob_item);
  PLACE("objects.tupleSize", tuple_object.ob_size);
  PLACE("objects.floatValue", float_object.ob_fval);
  PLACE("objects.longTag", long_object.lv_tag);
  PLACE("objects.longDigits", long_object.ob_digit);
  PLACE("bytesData", bytes_object.ob_sval);
  PLACE("asciiSize", unicode_object.asciiobject_size);
}
#endif

int main(void) {
#if PY_MINOR_VERSION >= 13
  debug_places();
#else
  SHOW("interpretersHead", offsetof(_PyRuntimeState, interpreters.head));
#if PY_MINOR_VERSION >= 11
  SHOW("threadsHead", offsetof(PyInterpreterState, threads.head));
#else
  SHOW("threadsHead", offsetof(PyInterpreterState, tstate_head));
#endif
  SHOW("interp.next", offsetof(PyInterpreterState, next));
  SHOW("interp.id", offsetof(PyInterpreterState, id));
  SHOW("thread.next", offsetof(PyThreadState, next));
  SHOW("thread.interp", offsetof(PyThreadState, interp));
  SHOW("thread.threadId", offsetof(PyThreadState, thread_id));
#if PY_MINOR_VERSION >= 11
  SHOW("thread.nativeThreadId", offsetof(PyThreadState, native_thread_id));
  SHOW("thread.frame", offsetof(PyThreadState, cframe));
  SHOW("thread.cframeCurrent", offsetof(_PyCFrame, current_frame));
  SHOW("frame.back", offsetof(_PyInterpreterFrame, previous));
  SHOW("frame.code", offsetof(_PyInterpreterFrame, f_code));
  SHOW("frame.position", offsetof(_PyInterpreterFrame, prev_instr));
  SHOW("frame.localsplus", offsetof(_PyInterpreterFrame, localsplus));
  SHOW("code.qualname", offsetof(PyCodeObject, co_qualname));
  SHOW("code.linetable", offsetof(PyCodeObject, co_linetable));
  SHOW("code.instructions", offsetof(PyCodeObject, co_code_adaptive));
  SHOW("code.localsNames", offsetof(PyCodeObject, co_localsplusnames));
  SHOW("code.localsKinds", offsetof(PyCodeObject, co_localspluskinds));
#else
  SHOW("thread.frame", offsetof(PyThreadState, frame));
  SHOW("frame.back", offsetof(PyFrameObject, f_back));
  SHOW("frame.code", offsetof(PyFrameObject, f_code));
  SHOW("frame.position", offsetof(PyFrameObject, f_lasti));
  SHOW("frame.localsplus", offsetof(PyFrameObject, f_localsplus));
#if PY_MINOR_VERSION >= 10
  SHOW("code.linetable", offsetof(PyCodeObject, co_linetable));
#else
  SHOW("code.linetable", offsetof(PyCodeObject, co_lnotab));
#endif
  SHOW("code.varnames", offsetof(PyCodeObject, co_varnames));
  SHOW("code.cellvars", offsetof(PyCodeObject, co_cellvars));
  SHOW("code.freevars", offsetof(PyCodeObject, co_freevars));
#endif
  SHOW("code.filename", offsetof(PyCodeObject, co_filename));
  SHOW("code.name", offsetof(PyCodeObject, co_name));
  SHOW("code.firstlineno", offsetof(PyCodeObject, co_firstlineno));
  SHOW("str.ascii", sizeof(PyASCIIObject));
  SHOW("str.compact", sizeof(PyCompactUnicodeObject));
  SHOW("bytesData", offsetof(PyBytesObject, ob_sval));
#if PY_MINOR_VERSION >= 12
  SHOW("gil.offset", offsetof(PyInterpreterState, ceval.gil));
  SHOW("gil.own", offsetof(PyInterpreterState, _gil));
#else
  SHOW("gil.offset", offsetof(_PyRuntimeState, ceval.gil));
#endif
  SHOW("gil.holder", offsetof(struct _gil_runtime_state, last_holder));
  SHOW("gil.locked", offsetof(struct _gil_runtime_state, locked));
  /* The objects dump --locals renders (the same on every version: checked, not assumed). */
  SHOW("object.type", offsetof(PyObject, ob_type));
  SHOW("object.size", offsetof(PyVarObject, ob_size));
  SHOW("type.name", offsetof(PyTypeObject, tp_name));
  SHOW("float.value", offsetof(PyFloatObject, ob_fval));
  SHOW("tuple.items", offsetof(PyTupleObject, ob_item));
  SHOW("str.length", offsetof(PyASCIIObject, length));
  SHOW("str.state", offsetof(PyASCIIObject, state));
  SHOW("bytes.size", offsetof(PyBytesObject, ob_base.ob_size));
  SHOW("dict.used", offsetof(PyDictObject, ma_used));
  SHOW("cell.ref", offsetof(PyCellObject, ob_ref));
#if PY_MINOR_VERSION >= 12
  SHOW("long.tag", offsetof(PyLongObject, long_value.lv_tag));
  SHOW("long.digits", offsetof(PyLongObject, long_value.ob_digit));
#else
  SHOW("long.digits", offsetof(PyLongObject, ob_digit));
#endif
  SHOW("long.digitBits", PyLong_SHIFT);
#endif
  return 0;
}
