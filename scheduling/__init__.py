"""Calendar maths and the job runner. Knows nothing of telmi: it works on times and callbacks."""
