// Ink calls these only when the environment has DEV=true; peeka's TUI has no devtools.
export default { initialize() {}, connectToDevTools() {} };
