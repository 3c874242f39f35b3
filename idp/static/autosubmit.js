document.getElementById("f").submit();
