"""The ink engine: handwriting synthesis (Graves 2013). Its Engine class waits for the new interface."""
