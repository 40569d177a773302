// The version peeka reports (peeka --version, peeka plugins).
export const VERSION = "0.1.0";
