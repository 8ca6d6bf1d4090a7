"""The pipeline's console (a live view or plain lines), its log files, and `solar-ray status`."""

from solar_ray.console.view import console_note, pipeline_console, stage_reporter

__all__ = ["console_note", "pipeline_console", "stage_reporter"]
