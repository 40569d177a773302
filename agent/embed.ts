// The agent's Python source, embedded in the program (no file is read at run time).
import agentSource from "./agent.py" with { type: "text" };

export const AGENT_SOURCE: string = agentSource;
export const AGENT_VERSION = "0.1.0";
