# The procedure catalogue

page-sector = Lĩnh vực
page-level = Cấp thực hiện
page-all-sectors = Tất cả lĩnh vực
page-all-levels = Tất cả các cấp
page-results = { $count } thủ tục
page-processing-time = Thời hạn giải quyết
page-fee = Lệ phí
page-fees = Phí, lệ phí
page-free = Miễn phí
page-code = Mã thủ tục
page-online-level = Dịch vụ công trực tuyến
page-result = Kết quả
page-apply-online = Nộp hồ sơ trực tuyến
page-not-online = Thủ tục này chưa cung cấp trực tuyến; vui lòng nộp trực tiếp tại địa chỉ dưới đây.
page-optional = không bắt buộc
page-where = Nơi nộp hồ sơ và nhận kết quả trực tiếp
page-legal-basis = Căn cứ pháp lý
home-title = Dịch vụ công trực tuyến
home-lead = Tìm thủ tục hành chính, nộp hồ sơ ngay trên điện thoại và theo dõi đến khi nhận kết quả.
home-search-label = Tìm thủ tục
home-search-placeholder = ví dụ: đăng ký khai sinh
home-sectors = Thủ tục theo lĩnh vực
home-account = Tài khoản
home-account-lead = Đăng nhập để nộp hồ sơ trực tuyến và theo dõi hồ sơ của bạn.
