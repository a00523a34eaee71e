"""Survey flows: definitions as YAML data, and the pure state machine that runs them."""

from ivr_flows.engine import Flow, FlowError, FlowState, Question, QuestionType
from ivr_flows.loader import FLOWS_DIR, load_flows, parse_flow

__all__ = [
    "FLOWS_DIR",
    "Flow",
    "FlowError",
    "FlowState",
    "Question",
    "QuestionType",
    "load_flows",
    "parse_flow",
]
