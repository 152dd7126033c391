"""The Gradio demo that compares LOR and DTR side by side: the engine (`engine`: model, examples,
scoring) and the app over it (`app`, `workbench demo`)."""
