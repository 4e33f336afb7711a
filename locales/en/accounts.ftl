# Accounts: sign-in, registration, verification of national ID numbers

problem-bad-credentials = Wrong user name or password
problem-rate-limited = Too many attempts; please try again later
login-no-account = No account yet?
reg-username = User name
reg-password = Password
field-unknown-citizen = There is no citizen account with this user name
verify-intro = When citizens bring their identity card to the counter: find their account, compare the original document with the person and with the account, then confirm. From then on their counter dossiers show under "My dossiers" of this account.
verify-error-summary = Not verified yet
verify-username = The citizen's user name
verify-find = Find the account
verify-account = The account
verify-typed-number = National ID number the citizen typed
verify-status = Verification
verify-not-yet = Not verified
verify-already = Verified on { $at } by { $by }
verify-national-id = Personal identification number on the document
verify-national-id-help = 12 digits, exactly as on the identity card.
verify-document = Document seen
verify-doc-cccd = Citizen identity card
verify-doc-cmnd = Old identity card
verify-doc-passport = Passport
verify-seen = I have seen the original document and compared it with the person at the counter and the name on the account
verify-submit = Verify the number
verify-done = The national ID number of { $name } is verified. { $n } counter dossier(s) now show under "My dossiers" of this account.
reg-error-summary = The account details need correcting
login-to-apply = Sign in to apply for { $procedure }. No account yet? Register, and you will come straight back to this form.
