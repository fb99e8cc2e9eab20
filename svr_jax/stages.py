"""The diabetic-retinopathy stages, in order (index = stage id): shared by the simulator and the text."""

STAGES = ("normal", "mild", "moderate", "severe", "pdr")
