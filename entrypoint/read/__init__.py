"""The read side: ``tekton-uploader-read`` lists, fetches and follows what the wrapper stored."""
