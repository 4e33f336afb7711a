# Accounts: sign-in, registration, verification of national ID numbers

problem-bad-credentials = Tên đăng nhập hoặc mật khẩu không đúng
problem-rate-limited = Bạn đã thử quá nhiều lần, vui lòng thử lại sau
login-no-account = Chưa có tài khoản?
reg-username = Tên đăng nhập
reg-password = Mật khẩu
field-unknown-citizen = Không có tài khoản công dân với tên đăng nhập này
verify-intro = Khi công dân mang căn cước công dân (hoặc giấy tờ tùy thân) đến quầy: tìm tài khoản của họ, đối chiếu giấy tờ gốc với người đến và với thông tin tài khoản, rồi xác nhận. Từ đó hồ sơ nộp tại quầy của công dân sẽ hiện trong mục "Hồ sơ của tôi" của tài khoản này.
verify-error-summary = Chưa xác thực được
verify-username = Tên đăng nhập của công dân
verify-find = Tìm tài khoản
verify-account = Thông tin tài khoản
verify-typed-number = Số định danh công dân tự khai
verify-status = Trạng thái xác thực
verify-not-yet = Chưa xác thực
verify-already = Đã xác thực lúc { $at } bởi { $by }
verify-national-id = Số định danh cá nhân trên giấy tờ
verify-national-id-help = 12 chữ số, nhập đúng như trên căn cước công dân.
verify-document = Giấy tờ đã xem
verify-doc-cccd = Căn cước công dân / căn cước
verify-doc-cmnd = Chứng minh nhân dân
verify-doc-passport = Hộ chiếu
verify-seen = Tôi đã xem giấy tờ gốc và đối chiếu với người đến quầy và với tên trên tài khoản
verify-submit = Xác thực số định danh
verify-done = Đã xác thực số định danh của { $name }. { $n } hồ sơ nộp tại quầy đã được chuyển vào "Hồ sơ của tôi" của tài khoản này.
reg-error-summary = Tài khoản chưa hợp lệ
login-to-apply = Đăng nhập để nộp hồ sơ { $procedure }. Chưa có tài khoản? Hãy đăng ký, rồi bạn sẽ quay lại đúng biểu mẫu này.
