// Holds a process under ptrace (as another debugger would) until killed.
import { PTRACE, ptrace } from "../../process/libc.ts";
const pid = Number(Deno.args[0]);
ptrace(PTRACE.SEIZE, pid);
console.log("tracing");
setInterval(() => {}, 1000);
