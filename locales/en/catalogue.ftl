# The procedure catalogue

page-sector = Sector
page-level = Level
page-all-sectors = All sectors
page-all-levels = All levels
page-results = { $count ->
    [one] 1 procedure
   *[other] { $count } procedures
}
page-processing-time = Processing time
page-fee = Fee
page-fees = Fees and charges
page-free = Free of charge
page-code = Procedure code
page-online-level = Online service
page-result = Result
page-apply-online = Apply online
page-not-online = This procedure is not offered online; please apply in person at the address below.
page-optional = optional
page-where = Where to apply and collect the result in person
page-legal-basis = Legal basis
home-title = Public services, online
home-lead = Find an administrative procedure, apply from your phone and follow your dossier until the result.
home-search-label = Search procedures
home-search-placeholder = e.g. birth registration
home-sectors = Procedures by sector
home-account = Your account
home-account-lead = Sign in with your account to apply online and follow your dossiers.
