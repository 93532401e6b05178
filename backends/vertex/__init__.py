"""The `vertex` backend: Gemini tuning on Google Vertex AI through the `google-genai` SDK in Vertex mode.

Data goes to Cloud Storage (google-cloud-storage) as Gemini's tuning JSONL, under a name taken from its content
(the same data is uploaded once). Jobs carry fto's job id as a label, which is how `find` recognises one after a
crash. Supervised tuning and preference tuning; the tuned model is queried on the endpoint Vertex deploys it to.
Credentials: Application Default Credentials, or an OAuth access token from the variable `access_token_env` names.
"""
